"""The fp8 ViT steps the fused-op tests compare: a checkpointed bf16 step of the tiny QLoRA ViT under a memory
policy, the same step with compiled blocks (recording what the graphs call), and the comparison within a tenth
of the fp8-vs-bf16 difference (test_fp8_mlp.py's and test_fp8_norm.py's error models)."""
import copy

import torch

from opentad.models.memory import compile as compile_module
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from tests.models.memory.tiny_qlora import bf16_step, compile_backend

BF16 = torch.bfloat16


def vit_step(model, fused: bool, compiled: bool, fp8: bool = True, norms: bool = False, stream_norms: bool = True):
    """One checkpointed bf16 step with the chunked backward (2 row groups), fp8 "all" (``fp8``) or bf16 products,
    the MLP fused (``fused``: ``fused_fp8_mlp``) and the norms (``norms``: ``fused_fp8_norms``), the unfused norms
    in bf16 (``stream_norms``) or autocast's float32, on ``model``'s device: (features, adapter gradients)."""
    model = copy.deepcopy(model)
    policy = MemoryPolicy(frozen_dtype=BF16, frozen_fp8="all" if fp8 else False, fused_fp8_mlp=fused,
                          fused_fp8_norms=norms, stream_norms=stream_norms, compile_blocks=compiled, checkpoint=True,
                          backward_chunks=2)
    apply_memory_policy(model, policy)
    return bf16_step(model, policy)


def within_fp8_tenth(got, want, bf16) -> None:
    """``got`` within a tenth of the fp8-vs-bf16 difference of ``want``, features and every gradient."""
    assert got[1].keys() == want[1].keys() and want[1]
    for name in ["features", *want[1]]:
        g, w, far = ((r[0] if name == "features" else r[1][name]) for r in (got, want, bf16))
        assert float((g - w).norm()) <= 0.1 * float((far - w).norm()), name


def compiled_step(model, backend: str, step=None, graphs=None):
    """``step(model)`` (default: :func:`vit_step` fused and compiled) with blocks compiled by ``backend``: (its
    results, graph breaks, targets the graphs call, their subgraphs' included: an autograd Function's forward and
    backward bodies); with ``backend="eager"`` the graphs are appended to ``graphs`` (a list) when given."""
    graphs = [] if graphs is None else graphs

    def recording(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    with compile_backend(backend):
        if backend == "eager":
            compile_module.BACKEND = recording
        torch._dynamo.reset()
        breaks = sum(torch._dynamo.utils.counters["graph_break"].values())
        result = vit_step(model, True, True) if step is None else step(model)
        breaks = sum(torch._dynamo.utils.counters["graph_break"].values()) - breaks
        torch._dynamo.reset()
    targets = {node.target for gm in graphs for sub in gm.modules() if isinstance(sub, torch.fx.GraphModule)
               for node in sub.graph.nodes if node.op == "call_function"}
    return result, breaks, targets
