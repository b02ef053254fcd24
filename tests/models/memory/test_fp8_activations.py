"""The fused activation ops (GELU or its backward, then the fp8 row quantization): their Triton kernels against
the eager ops (checks in ``fp8_activation_cases.py``, a fresh process each: Triton picks its CPU interpreter
when first imported), and the ops as custom ops, reference path, in a compiled function."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from opentad.models.memory import fp8_activations as A
from opentad.models.memory.fp8_rows import quantize_rows_reference
from tests.models.memory.kernel_cases import run_cases

CASES = Path(__file__).with_name("fp8_activation_cases.py")
#: the device check, 3 shapes x 2 ops x 5 checks, 2 rounding checks, the sweep, 2 hand-worked rows, 2 erf checks,
#: 2 widths x 2 NaNs x 2 ops, 2 strided cases' 10, no rows, float32 rows, 2 refusals
AT_LEAST = 1 + 30 + 2 + 1 + 2 + 2 + 8 + 10 + 1 + 1 + 2


def test_the_kernels_in_tritons_interpreter_follow_the_eager_ops():
    pytest.importorskip("triton")
    run_cases(CASES, "cpu", interpret=True, at_least=AT_LEAST)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_kernels_on_cuda_follow_the_eager_ops():
    """And (CUDA only) the integer arithmetic gives the default native casts' bits: 2 shapes x 2 ops, and the sweep's
    bf16 and e4m3 checks."""
    run_cases(CASES, "cuda", interpret=False, at_least=AT_LEAST + 6)


def test_without_a_kernel_the_ops_are_the_eager_ops_bit_for_bit():
    """On the CPU without Triton's interpreter: exactly PyTorch's activation, then the reference quantizer."""
    gen = torch.Generator().manual_seed(0)
    h = (torch.randn(7, 48, generator=gen) * 3).bfloat16()
    g = (torch.randn(7, 48, generator=gen) * 1e-3).bfloat16()
    for (q, s), (q_ref, s_ref) in [(A.gelu_fp8_rows(h), quantize_rows_reference(F.gelu(h))),
                                   (A.gelu_backward_fp8_rows(g, h),
                                    quantize_rows_reference(torch.ops.aten.gelu_backward(g, h)))]:
        assert torch.equal(q.view(torch.uint8), q_ref.view(torch.uint8)) and torch.equal(s, s_ref)


@pytest.mark.skipif(not A.CUSTOM_OPS, reason="torch.library.custom_op: torch 2.4 or later")
def test_a_compiled_function_calls_the_ops_as_they_are():
    """Dynamo keeps each op one node of the graph (its fake gives the shapes), and the compiled function computes
    what the eager one does."""
    graphs = []

    def recording(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    def f(g, h):
        q, s = A.gelu_fp8_rows(h)
        qb, sb = A.gelu_backward_fp8_rows(g, h)
        return q.float() * s + qb.float() * sb

    gen = torch.Generator().manual_seed(1)
    h, g = (torch.randn(5, 32, generator=gen) * 2).bfloat16(), torch.randn(5, 32, generator=gen).bfloat16()
    torch._dynamo.reset()
    got = torch.compile(f, backend=recording, fullgraph=True)(g, h)
    torch._dynamo.reset()
    targets = [node.target for gm in graphs for node in gm.graph.nodes if node.op == "call_function"]
    assert torch.ops.opentad.gelu_fp8_rows.default in targets
    assert torch.ops.opentad.gelu_backward_fp8_rows.default in targets
    assert torch.equal(got, f(g, h))


@pytest.mark.parametrize("backward", [False, True])
def test_the_cuda_kernel_compiles_for_hopper_with_the_gpus_own_instructions(backward):
    """The default CUDA path (native conversions, three pieces of 2048: g's rows), compiled for sm90 without a GPU:
    its PTX converts to e4m3 with the saturating instruction (no double rounding through fp16), takes the row
    maximum with the NaN-propagating one, and has erf's power of two as ``erff``'s ``ex2.approx.ftz``."""
    triton = pytest.importorskip("triton")
    pytest.importorskip("triton.backends.nvidia")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from opentad.models.memory.fp8_activation_kernels import gelu_rows_kernel

    pointers = {"g_ptr": "*bf16", "h_ptr": "*bf16", "q_ptr": "*u8", "scale_ptr": "*fp32"}
    values = {"cols": "i32", "g_stride": "i32", "h_stride": "i32", "tiny": "fp32"}
    shape = {"PART": 2048, "PARTS": 3, "EVEN": True, "BACKWARD": backward, "NATIVE": True}
    source = ASTSource(fn=gelu_rows_kernel, signature={**pointers, **values, **{k: "constexpr" for k in shape}},
                       constexprs=shape)
    ptx = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4}).asm["ptx"]
    assert "cvt.rn.satfinite.e4m3x2.f32" in ptx and "cvt.rn.f16" not in ptx
    assert "max.NaN.f32" in ptx and "ex2.approx.ftz.f32" in ptx
