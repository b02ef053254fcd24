"""``fused_fp8_norms`` in whole ViT steps: compiled blocks (Dynamo's ``eager`` backend on the CPU, Inductor on CUDA)
and blocks replayed from CUDA graphs keep the fp8 step's results.

Error model: test_fp8_norm.py's. A compiled step reorders float32 sums only, which moves a value across an e4m3
rounding boundary rarely: within a tenth of the fp8-vs-bf16 difference, as test_fp8_mlp.py states; on the CPU
against a reference step whose norms compute as CUDA's bf16 norm does (float32 statistics).
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from opentad.models.memory.stream_norm import StreamLayerNorm
from tests.models.memory.fp8_steps import compiled_step, vit_step, within_fp8_tenth
from tests.models.memory.tiny_qlora import tiny_qlora_vit

BF16 = torch.bfloat16


def _float32_statistics_norm(self, x: torch.Tensor) -> torch.Tensor:
    """The blocks' bf16 layer norm as CUDA computes it (float32 statistics and arithmetic, one rounding), where the
    CPU's bf16 kernel keeps bf16 statistics."""
    with torch.autocast(x.device.type, enabled=False):
        y = F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps)
    return y.to(x.dtype)


def _with_biases(model: nn.Module) -> nn.Module:
    """``model`` with its frozen attention biases (``q_bias``, ``v_bias``) and block norms' weights and biases
    drawn away from their initial zeros and ones, so that a fused branch that dropped one would show."""
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for block in model.blocks:
            for t in (block.attn.q_bias, block.attn.v_bias, block.norm1.bias, block.norm2.bias):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.5)
            for t in (block.norm1.weight, block.norm2.weight):
                t.copy_(1 + torch.randn(t.shape, generator=gen) * 0.3)
    return model


def test_a_compiled_vit_step_calls_the_fused_norm_and_keeps_the_fp8_results(monkeypatch):
    """The tiny QLoRA ViT without LoRA dropout, frozen biases and norms drawn (:func:`_with_biases`), compiled
    with Dynamo's ``eager`` backend, fused MLP and norms: a block's graph calls the fused norm twice (``norm1``
    with ``qkv``, ``norm2`` with ``fc1``), with no graph break, and the step (checkpointed, with the chunked
    backward's recomputation that leaves ``fc2`` out) is within the module's error model of the eager fused-MLP
    step whose norms compute as CUDA's bf16 norm does (the fused norm's arithmetic; the CPU's own bf16 norm
    rounds its statistics to bf16, which moves gradients by a third of the fp8-vs-bf16 difference)."""
    model = _with_biases(tiny_qlora_vit(lora_dropout=0.0))
    bf16 = vit_step(model, False, False, fp8=False)
    graphs = []
    compiled, breaks, _ = compiled_step(model, "eager", step=lambda m: vit_step(m, True, True, norms=True),
                                        graphs=graphs)
    assert breaks == 0
    op = torch.ops.opentad.layer_norm_fp8_rows.default
    calls = [sum(node.target is op for sub in gm.modules() if isinstance(sub, torch.fx.GraphModule)
                 for node in sub.graph.nodes) for gm in graphs]
    assert max(calls) == 2, calls
    monkeypatch.setattr(StreamLayerNorm, "forward", _float32_statistics_norm)
    within_fp8_tenth(compiled, vit_step(model, True, False), bf16)


def test_blocks_replayed_from_cuda_graphs_keep_the_fused_norms_results(monkeypatch):
    """The configuration of the g benchmark (compiled blocks, fp8 "all", fused MLP and norms, CUDA graphs) through
    the emulating graph backend: the third step is replayed, and its features and gradients are the ungraphed
    compiled step's within the module's error model (the graphs run the same compiled blocks)."""
    from opentad.models.memory.graph_capture import Replay
    from tests.models.memory.graph_cases import graphed
    from tests.models.memory.tiny_qlora import bf16_step, compile_backend

    replays, real = [], Replay.apply
    monkeypatch.setattr(Replay, "apply", lambda *args: replays.append(1) or real(*args))
    options = dict(frozen_dtype=BF16, frozen_fp8="all", fused_fp8_mlp=True, fused_fp8_norms=True,
                   compile_blocks=True, checkpoint=True)
    model = _with_biases(tiny_qlora_vit(lora_dropout=0.0))
    bf16 = vit_step(model, False, False, fp8=False)
    with compile_backend("eager"):
        plain, policy = copy.deepcopy(model), MemoryPolicy(**options)
        apply_memory_policy(plain, policy)
        want = bf16_step(plain, policy)
        graphed_model, policy = copy.deepcopy(model), graphed(**options)
        apply_memory_policy(graphed_model, policy)
        for _ in range(3):
            graphed_model.zero_grad(set_to_none=True)
            got = bf16_step(graphed_model, policy)
    assert len(replays) == 2  # one eager warm-up step, then the capture's and the next step's replays
    within_fp8_tenth(got, want, bf16)


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9),
                    reason="fp8 products on CUDA need compute capability 8.9 or more")
def test_on_cuda_the_inductor_compiled_fused_norms_keep_the_fp8_results():
    """On CUDA the fused norm is the Triton kernel (a value may move by one e4m3 step) and CUDA's bf16 norm keeps
    float32 statistics as the fused backward does: the Inductor-compiled step with fused MLP and norms (drawn
    biases, no LoRA dropout; the graphs' calls are the CPU test's), with no graph break, is within a tenth of
    the fp8-vs-bf16 difference of the eager unfused fp8 "all" step. (Not yet run on a GPU.)"""
    model = _with_biases(tiny_qlora_vit("cuda", lora_dropout=0.0))
    plain, bf16 = vit_step(model, False, False), vit_step(model, False, False, fp8=False)
    compiled, breaks, _ = compiled_step(model, "inductor", step=lambda m: vit_step(m, True, True, norms=True))
    assert breaks == 0
    within_fp8_tenth(compiled, plain, bf16)
