"""The chunked backward's recomputation in compiled blocks leaves out the frozen MLP's ``fc2`` product, as the
eager recomputation does (:func:`~opentad.models.memory.frozen_mlp.unused_output_mlp`), with the same gradients.

Error model, as ``test_compile.py``'s for the float32 QLoRA ViT: compiling (``aot_eager``: the ATen kernels the
eager run calls) changes at most the order of sums, so results differ from the eager run by at most
``n * eps * n * max|value|`` with ``n = 256``. What the compiled recomputation multiplies is read from the
graphs Dynamo hands a recording backend: the linear layers it calls.
"""
import copy

import pytest
import torch

from opentad.models.memory import compile as compile_module
from opentad.models.memory.dequant_cache import hold_dequantized
from opentad.models.memory.frozen_mlp import output_unused
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from tests.models.memory.tiny_qlora import compile_backend, tiny_qlora_vit

EPS32, N = torch.finfo(torch.float32).eps, 256


def _close(got: torch.Tensor, want: torch.Tensor) -> bool:
    return float((got - want).abs().max()) <= N * EPS32 * N * max(float(want.abs().max()), 1e-6)


def _step(model, compiled: bool):
    """A chunked (2 row groups) float32 step of a copy of ``model`` with held weights: (loss, gradients)."""
    model = copy.deepcopy(model)
    policy = MemoryPolicy(checkpoint=True, backward_chunks=2, compile_blocks=compiled)
    apply_memory_policy(model, policy)
    hold_dequantized(model, True, None)
    frames = torch.randn(4, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)  # stochastic depth, LoRA dropout
    out = policy.run_backbone(model, frames)
    loss = (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_a_compiled_chunked_step_has_the_eager_gradients():
    with compile_backend("aot_eager"):
        model = tiny_qlora_vit()
        ref_loss, ref_grads = _step(model, False)
        loss, grads = _step(model, True)
    assert set(grads) == set(ref_grads) and grads
    assert _close(loss, ref_loss)
    assert all(_close(grads[name], want) for name, want in ref_grads.items())


@pytest.mark.parametrize("held", [True, False])
def test_the_recomputation_leaves_out_fc2_where_its_backward_has_tensors(held):
    """With held weights the unused-output residual's graph calls 3 linears (qkv, proj, fc1), the plain one 4;
    its input gradient is the eager residual's. Without a held copy ``fc2``'s packed weight has no tensor for the
    backward: the whole MLP is computed (4-bit layers run eagerly between graphs, so no linear is traced)."""
    graphs = []

    def recording(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    model = tiny_qlora_vit().eval()  # no dropout: one residual per call
    with compile_backend("eager"):
        compile_module.BACKEND = recording
        apply_memory_policy(model, MemoryPolicy(compile_blocks=True))
        if held:
            hold_dequantized(model, True, None)
        block = model.blocks[1]
        x = torch.randn(8, 8, 64, generator=torch.Generator().manual_seed(2), requires_grad=True)
        grad = torch.randn(8, 8, 64, generator=torch.Generator().manual_seed(3))
        counts, input_grads = {}, {}
        for unused in (False, True):
            torch._dynamo.reset()
            graphs.clear()
            with output_unused() if unused else torch.enable_grad():
                out = block.residual(x)
            input_grads[unused] = torch.autograd.grad(out, x, grad)[0]
            counts[unused] = sum(node.target is torch._C._nn.linear for gm in graphs for node in gm.graph.nodes)
        torch._dynamo.reset()
    want = torch.autograd.grad(type(block).residual(block, x), x, grad)[0]  # eager, the plain MLP
    assert counts == ({False: 4, True: 3} if held else {False: 0, True: 0}), counts
    assert _close(input_grads[True], want) and _close(input_grads[False], want)


def _nodes(graphs, kind: str, target) -> int:
    """Nodes of ``kind`` calling ``target`` in the graphs and their subgraphs (an autograd Function's forward and
    backward bodies)."""
    return sum(node.op == kind and node.target == target for gm in graphs for sub in gm.modules()
               if isinstance(sub, torch.fx.GraphModule) for node in sub.graph.nodes)


def test_with_fp8_products_the_recomputation_leaves_out_fc2s_fp8_forward():
    """``frozen_fp8="all"`` under bf16 autocast: the residual's graphs hold 8 fp8 products (forward and backward of
    qkv, proj, fc1, fc2); the unused-output residual's 7 (fc2's forward left out, its backward from the transposed
    fp8 weight) and the one uninitialised output; its input gradient is the plain compiled residual's."""
    from opentad.models.memory.fp8_matmul import quantize_fp8_weights

    graphs = []

    def recording(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    model = tiny_qlora_vit().eval()
    with compile_backend("eager"):
        compile_module.BACKEND = recording
        apply_memory_policy(model, MemoryPolicy(compile_blocks=True, frozen_dtype=torch.bfloat16, frozen_fp8="all"))
        quantize_fp8_weights(model, torch.device("cpu"))
        block = model.blocks[1]
        x = torch.randn(8, 8, 64, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16).requires_grad_(True)
        grad = torch.randn(8, 8, 64, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
        found, input_grads = {}, {}
        for unused in (False, True):
            torch._dynamo.reset()
            graphs.clear()
            with torch.autocast("cpu", dtype=torch.bfloat16), (output_unused() if unused else torch.enable_grad()):
                out = block.residual(x)
            input_grads[unused] = torch.autograd.grad(out, x, grad)[0].float()
            found[unused] = (_nodes(graphs, "call_function", torch._scaled_mm),
                             _nodes(graphs, "call_method", "new_empty"))
        torch._dynamo.reset()
    assert found == {False: (8, 0), True: (7, 1)}, found
    # the same fp8 products in the same order: a tenth of a bf16 rounding of the gradient at most
    assert float((input_grads[True] - input_grads[False]).norm()) <= 0.1 * 2.0**-8 * float(input_grads[False].norm())
