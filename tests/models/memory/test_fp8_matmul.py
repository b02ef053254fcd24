"""The frozen 4-bit layers' fp8 products (``custom.frozen_fp8``): the row quantizer, the error models of the
forward and of the fp8 backward, the layouts ``torch._scaled_mm`` gets (``test_fp8_policy.py``: installation,
the weight cache, the modes).

The quantization kernel's own checks live in ``fp8_kernel_cases.py`` and run in a fresh process (Triton's CPU
interpreter is chosen when Triton is first imported). Here the layer's product runs on the CPU through
``torch._scaled_mm``'s reference kernel, with the rows quantized by the PyTorch reference.

Error model (unit roundoffs: e4m3 ``u8 = 2^-4``, bf16 ``ub = 2^-8``, float32 ``u32 = 2^-24``): each value ``v``
of a row with scale ``s`` is stored as ``q * s`` with ``|q * s - v| <= u8 |v| + 2^-10 s`` (e4m3's normal range;
its subnormals are ``2^-9`` apart), to first order in ``u32`` for the scaling. The product of the stored
operands is accumulated in float32 (at most ``K u32`` of the sum of magnitudes), the bias added in bf16, the
result rounded to bf16 (``ub``).
"""
from pathlib import Path

import pytest
import torch
from torch import nn

from opentad.models.bricks.quant import dequantize_weight
from opentad.models.memory import fp8_matmul as F8
from opentad.models.memory import fp8_rows as R8
from tests.models.memory.fp8_layers import BF16, frozen_layer, spread_inputs
from tests.models.memory.kernel_cases import run_cases

pytest.importorskip("bitsandbytes")

U8, UB, U32 = 2.0**-4, 2.0**-8, 2.0**-24
CASES = Path(__file__).with_name("fp8_kernel_cases.py")


def _run_cases(device: str, interpret: bool) -> None:
    run_cases(CASES, device, interpret, at_least=26)


def test_the_kernel_in_tritons_interpreter_matches_the_reference_bitwise():
    pytest.importorskip("triton")
    _run_cases("cpu", interpret=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the compiled kernel needs a CUDA device")
def test_the_kernel_on_cuda_matches_the_reference_bitwise():
    pytest.importorskip("triton")
    _run_cases("cuda", interpret=False)


@pytest.fixture
def cublaslt_layouts(monkeypatch):
    """``torch._scaled_mm`` refusing what CUDA's cuBLASLt refuses (the CPU kernel takes any strides): the first
    operand row-major, the second column-major. Returns the list of calls made."""
    calls, real = [], torch._scaled_mm

    def checked(a, b, *args, **kwargs):
        assert a.stride(1) == 1 and b.stride(0) == 1, f"cuBLASLt refuses strides {a.stride()} @ {b.stride()}"
        calls.append((tuple(a.shape), tuple(b.shape)))
        return real(a, b, *args, **kwargs)

    monkeypatch.setattr(torch, "_scaled_mm", checked)
    return calls


def test_hand_worked_rows():
    x = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0], [448.0, 17.0, 19.0, -17.0]])
    q, scale = R8.quantize_rows_reference(x)
    # row 0: amax 2, every value times 224 is on the e4m3 grid; row 1: all zero, no NaN; row 2: ties to even
    assert q.float().tolist() == [[224.0, -448.0, 112.0, 0.0], [0.0] * 4, [448.0, 16.0, 20.0, -16.0]]
    assert torch.equal(scale.flatten(), torch.tensor([2.0, R8.TINY, 448.0]) / 448.0)  # float32 divisions


def test_quantized_rows_stay_within_the_error_model():
    x = spread_inputs(64, 256).float()
    q, scale = R8.quantize_rows_reference(x)
    err = (q.double() * scale.double() - x.double()).abs()
    bound = (U8 + 4 * U32) * x.double().abs() + 2.0**-10 * scale.double() * (1 + 4 * U32)
    assert bool((err <= bound).all())
    assert bool((err > 0).any())  # e4m3 really rounds these values
    # the scale is the correctly rounded quotient (float64's rounding of a float32 quotient then to float32 is
    # exact rounding: 53 >= 2 * 24 + 2), as the kernel's div_rn; CUDA's tensor-by-scalar division is not
    amax = x.abs().amax(dim=1, keepdim=True)
    assert torch.equal(scale, (amax.double() / 448.0).float())
    assert q.is_contiguous() and R8.quantize_rows_reference(x.t())[0].is_contiguous()


class _CudaScalarDivision(torch.overrides.TorchFunctionMode):
    """The CPU dividing a float32 tensor by a Python number as CUDA does: a product with the number's float32
    reciprocal (which is not correctly rounded division)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.Tensor.div, torch.Tensor.__truediv__, torch.div) and isinstance(args[1], (int, float)):
            return args[0] * torch.tensor(1.0 / args[1], dtype=torch.float32)
        return func(*args, **kwargs)


def test_the_reference_scale_does_not_depend_on_how_the_device_divides_by_a_number():
    """The kernel's scale is ``div_rn(amax, 448)``; the reference must give it on CUDA too, whose division of a
    tensor by a Python number multiplies by a rounded reciprocal (which differs in many rows)."""
    x = spread_inputs(4096, 16, seed=9).float() * torch.logspace(-2, 2, 4096)[:, None]
    amax = x.abs().amax(dim=1, keepdim=True)
    want = (amax.double() / 448.0).float()
    with _CudaScalarDivision():
        reciprocal = amax / 448.0
        _, scale = R8.quantize_rows_reference(x)
    assert not torch.equal(reciprocal, want)  # the emulation really rounds differently
    assert torch.equal(scale, want)


def _emulated(x: torch.Tensor, layer: nn.Module):
    """float64 product of the quantized operands, the exact product, and magnitudes for the bounds."""
    w = dequantize_weight(layer).double()
    qx, sx = R8.quantize_rows_reference(x)
    qw, sw = R8.quantize_rows_reference(w.float())
    xs, ws = qx.double() * sx.double(), qw.double() * sw.double()
    bias = layer.bias.to(BF16).double()
    stored = xs @ ws.t()
    exact = x.double() @ w.t() + layer.bias.double()
    return stored, bias, exact, xs.abs() @ ws.abs().t(), w, sx.double(), sw.double()


def test_the_layer_multiplies_the_quantized_operands(cublaslt_layouts):
    k, m = 96, 48
    layer = frozen_layer(k, m)
    x = spread_inputs(40, k)
    assert F8.set_fp8_products(layer, True) == 1
    y = layer(x)
    stored, bias, _, mags, *_ = _emulated(x.float(), layer)
    assert y.dtype == BF16 and y.shape == (40, m)
    # float32 accumulation of the stored operands, bias in bf16 (exact in float32), one bf16 rounding
    want = stored + bias
    bound = k * U32 * mags + UB * (want.abs() + k * U32 * mags) + 1e-30
    assert bool(((y.double() - want).abs() <= bound).all())
    assert cublaslt_layouts == [((40, k), (k, m))]


def test_the_layer_is_within_the_error_model_of_the_exact_product():
    k, m = 96, 48
    layer = frozen_layer(k, m, seed=3)
    x = spread_inputs(40, k, seed=4)
    F8.set_fp8_products(layer, True)
    y = layer(x).double()
    _, _, exact, _, w, sx, sw = _emulated(x.float(), layer)
    ax, aw = x.double().abs(), w.abs()
    ex = U8 * ax + 2.0**-10 * sx  # per value of x, [R, K]
    ew = U8 * aw + 2.0**-10 * sw  # per value of W, [M, K]
    operand = ex @ aw.t() + ax @ ew.t() + ex @ ew.t()
    accum = k * U32 * ((ax + ex) @ (aw + ew).t())
    bias_round = UB * layer.bias.double().abs()
    bound = (operand + accum + bias_round) * (1 + 8 * U32) + UB * (exact.abs() + operand + accum + bias_round)
    assert bool(((y - exact).abs() <= bound).all())
    assert float((y - exact).abs().max()) > float((UB * exact.abs()).max())  # not the bf16 product in disguise


def test_backward_is_the_bf16_product_with_the_frozen_weight_and_nothing_else_trains():
    k, m = 64, 32
    layer = frozen_layer(k, m)
    F8.set_fp8_products(layer, True)
    x = spread_inputs(24, k).float().requires_grad_(True)
    grad = torch.randn(24, m, generator=torch.Generator().manual_seed(9)).to(BF16)
    with torch.autocast("cpu", dtype=BF16):
        y = layer(x)
    assert y.dtype == BF16
    y.backward(grad)
    w = dequantize_weight(layer).to(BF16).double()
    want = grad.double() @ w
    bound = k * U32 * (grad.double().abs() @ w.abs()) + UB * want.abs() * (1 + U32) + 1e-30
    assert x.grad.dtype == torch.float32
    assert bool(((x.grad.double() - want).abs() <= bound).all())
    assert all(p.grad is None for p in layer.parameters())


@pytest.mark.parametrize("why", ["float32", "width 40", "no rows"])
def test_otherwise_the_layer_keeps_its_own_product(why):
    k, m = (40, 32) if why == "width 40" else (32, 48)
    layer = frozen_layer(k, m)
    x = spread_inputs(0 if why == "no rows" else 8, k)
    if why == "float32":
        layer.compute_dtype = torch.float32
        x = x.float()
    plain = layer(x)
    F8.set_fp8_products(layer, True)
    assert F8.fp8_frozen_linear(layer, x, layer.compute_dtype) is None
    assert torch.equal(layer(x), plain)


def test_the_fp8_backward_is_within_its_error_model(cublaslt_layouts):
    """``frozen_fp8="all"``: ``grad_x = e4m3(grad) @ e4m3(W)``, the gradient scaled per row, ``W`` per input
    channel (a row of ``W.T``); the same error model as the forward, with ``M`` products per value."""
    k, m = 64, 48
    layer = frozen_layer(k, m, seed=6)
    assert F8.set_fp8_products(layer, "all") == 1
    x = spread_inputs(24, k, seed=7).float().requires_grad_(True)
    grad = spread_inputs(24, m, seed=8)
    with torch.autocast("cpu", dtype=BF16):
        y = layer(x)
    y.backward(grad)
    w = dequantize_weight(layer).double()
    g = grad.double()
    qg, sg = R8.quantize_rows_reference(grad)
    qw, sw = R8.quantize_rows_reference(w.float().t())  # [K, M], one scale per input channel
    stored = (qg.double() * sg.double()) @ (qw.double() * sw.double()).t()
    mags = (qg.double() * sg.double()).abs() @ (qw.double() * sw.double()).abs().t()
    tight = m * U32 * mags + UB * (stored.abs() + m * U32 * mags) + 1e-30
    assert bool(((x.grad.double() - stored).abs() <= tight).all())  # exactly those quantized operands
    exact = g @ w
    eg = U8 * g.abs() + 2.0**-10 * sg.double()  # [R, M]
    ew = U8 * w.abs() + 2.0**-10 * sw.double().t()  # [M, K]: W's column k scaled by sw[k]
    operand = eg @ w.abs() + g.abs() @ ew + eg @ ew
    accum = m * U32 * ((g.abs() + eg) @ (w.abs() + ew))
    bound = (operand + accum) * (1 + 8 * U32) + UB * (exact.abs() + operand + accum)
    assert bool(((x.grad.double() - exact).abs() <= bound).all())
    assert float((x.grad.double() - exact).abs().max()) > float((UB * exact.abs()).max())  # really fp8
    assert all(p.grad is None for p in layer.parameters())
    assert cublaslt_layouts == [((24, k), (k, m)), ((24, m), (m, k))]  # forward, then the input gradient
