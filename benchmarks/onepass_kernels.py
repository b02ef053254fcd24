"""One-pass Triton kernels of the fp8 row fusions that compiled blocks leave to Inductor (a benchmark candidate).

Inside a compiled block with ``frozen_fp8`` the rows of each frozen product's
input are quantized to e4m3 (:func:`opentad.models.memory.fp8_rows.quantize_rows_reference`)
by a kernel Inductor fuses with what precedes them: the layer norm before
``qkv`` and ``fc1``, GELU before ``fc2``, ``gelu_backward`` before ``fc1``'s
input gradient. Inductor reads a row of more than 1024 values twice (its
maximum, then its values) unless ``compile_blocks="multi-kernel"`` picks a
one-pass kernel, which for GELU's 6144-value rows measured slower (run 28).
These kernels do each fusion in one pass, one program per row, the whole row
in registers, and write only the quantized row and its scale: what the
block's next product needs. ``tools/benchmark_kernels.py --fusions`` times
them beside Inductor's on CUDA; the blocks do not use them.

Arithmetic (each step as the eager ops compute it, so that the rows agree to
within one e4m3 step): the activation in float32, rounded to bf16 (eager's
bf16 output; in integer arithmetic, as the e4m3 rounding), then the row
quantization of :mod:`opentad.models.memory.fp8_kernels`
(``amax`` at least ``tiny``, ``448 / amax`` and ``amax / 448`` correctly
rounded, e4m3 to nearest, ties to even). GELU is the exact one,
``0.5 h (1 + erf(h / sqrt 2))``; its derivative ``cdf(h) + h pdf(h)`` with
``pdf(h) = exp(-h^2 / 2) / sqrt(2 pi)``; the layer norm's mean and variance
are two float32 sums over the row (PyTorch's Welford sums differ in the last
float32 bits: bf16 outputs may differ by one unit in the last place).
"""
from __future__ import annotations

from typing import Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from opentad.models.memory.fp8_kernels import store_quantized_row
from opentad.models.memory.fp8_rows import FP8, TINY

__all__ = ["gelu_rows", "gelu_backward_rows", "layer_norm_rows", "round_bf16"]

@triton.jit
def _round_bf16(v):
    """float32 -> the nearest bf16 value (ties to even) as float32, in integer arithmetic: Triton's CPU
    interpreter's own cast to bf16 does not round to nearest. NaN stays NaN."""
    bits = v.to(tl.uint32, bitcast=True)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    rounded = tl.where((bits & 0x7FFFFFFF) > 0x7F800000, bits | 0x00400000, rounded)
    return rounded.to(tl.float32, bitcast=True)


@triton.jit
def _gelu_kernel(h_ptr, q_ptr, scale_ptr, cols, h_stride, tiny, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < cols
    h = tl.load(h_ptr + row * h_stride + offs, mask=mask, other=0.0).to(tl.float32)
    y = 0.5 * h * (1.0 + tl.math.erf(h * 0.7071067811865476))
    store_quantized_row(_round_bf16(y), offs, mask, q_ptr, scale_ptr, row, cols, tiny)


@triton.jit
def _gelu_backward_kernel(g_ptr, h_ptr, q_ptr, scale_ptr, cols, g_stride, h_stride, tiny, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < cols
    g = tl.load(g_ptr + row * g_stride + offs, mask=mask, other=0.0).to(tl.float32)
    h = tl.load(h_ptr + row * h_stride + offs, mask=mask, other=0.0).to(tl.float32)
    cdf = 0.5 * (1.0 + tl.math.erf(h * 0.7071067811865476))
    pdf = tl.exp(-0.5 * h * h) * 0.3989422804014327
    d = g * (cdf + h * pdf)
    store_quantized_row(_round_bf16(d), offs, mask, q_ptr, scale_ptr, row, cols, tiny)


@triton.jit
def _layer_norm_kernel(x_ptr, w_ptr, b_ptr, q_ptr, scale_ptr, cols, x_stride, eps, tiny, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < cols
    x = tl.load(x_ptr + row * x_stride + offs, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / cols
    diff = tl.where(mask, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt_rn(tl.sum(diff * diff, axis=0) / cols + eps)
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    y = tl.where(mask, diff * rstd * w + b, 0.0)
    store_quantized_row(_round_bf16(y), offs, mask, q_ptr, scale_ptr, row, cols, tiny)


@triton.jit
def _round_kernel(v_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, _round_bf16(tl.load(v_ptr + offs, mask=mask, other=0.0)), mask=mask)


def round_bf16(v: Tensor) -> Tensor:
    """The kernels' rounding of float32 values to bf16 (returned as float32), for the tests.

    Raises:
        ValueError: ``v`` not a contiguous float32 tensor.
    """
    if v.dtype != torch.float32 or not v.is_contiguous():
        raise ValueError(f"contiguous float32 values expected, got {v.dtype}, contiguous={v.is_contiguous()}")
    out = torch.empty_like(v)
    if v.numel():
        _round_kernel[(triton.cdiv(v.numel(), 1024),)](v, out, v.numel(), BLOCK=1024)
    return out


def _outputs(rows: int, cols: int, device: torch.device) -> Tuple[Tensor, Tensor, int, int]:
    """Empty ``q [rows, cols]`` e4m3 and ``scale [rows, 1]`` float32, the block size and warps for ``cols``."""
    block = max(16, 1 << (cols - 1).bit_length())
    q = torch.empty((rows, cols), dtype=FP8, device=device)
    scale = torch.empty((rows, 1), dtype=torch.float32, device=device)
    return q, scale, block, (16 if block >= 8192 else 8 if block >= 2048 else 4)


def _check(*tensors: Tensor) -> None:
    for t in tensors:
        if t.dim() != 2 or t.stride(1) != 1 or t.shape[1] > 16384 or t.dtype != torch.bfloat16:
            raise ValueError(f"bf16 rows [R, K] with unit stride along K and K <= 16384 expected, got {t.dtype} "
                             f"shape {tuple(t.shape)} strides {t.stride()}")


def gelu_rows(h: Tensor) -> Tuple[Tensor, Tensor]:
    """``quantize_rows_reference(F.gelu(h))`` for bf16 ``h [R, K]`` in one pass.

    Returns:
        ``(q [R, K] e4m3, scale [R, 1] float32)``.

    Raises:
        ValueError: ``h`` not bf16 ``[R, K]`` with unit stride along K and ``K <= 16384``.
    """
    _check(h)
    q, scale, block, warps = _outputs(*h.shape, h.device)
    if h.shape[0]:
        _gelu_kernel[(h.shape[0],)](h, q.view(torch.uint8), scale, h.shape[1], h.stride(0), TINY, BLOCK=block,
                                    num_warps=warps)
    return q, scale


def gelu_backward_rows(grad: Tensor, h: Tensor) -> Tuple[Tensor, Tensor]:
    """``quantize_rows_reference(torch.ops.aten.gelu_backward(grad, h))`` for bf16 ``[R, K]`` in one pass.

    Raises:
        ValueError: as :func:`gelu_rows`, or ``grad`` and ``h`` of different shapes.
    """
    _check(grad, h)
    if grad.shape != h.shape:
        raise ValueError(f"grad {tuple(grad.shape)} and h {tuple(h.shape)} must have one shape")
    q, scale, block, warps = _outputs(*h.shape, h.device)
    if h.shape[0]:
        _gelu_backward_kernel[(h.shape[0],)](grad, h, q.view(torch.uint8), scale, h.shape[1], grad.stride(0),
                                             h.stride(0), TINY, BLOCK=block, num_warps=warps)
    return q, scale


def layer_norm_rows(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-6) -> Tuple[Tensor, Tensor]:
    """``quantize_rows_reference(F.layer_norm(x, (K,), weight, bias, eps))`` for bf16 ``x [R, K]`` in one pass.

    Raises:
        ValueError: as :func:`gelu_rows`, or ``weight``/``bias`` not contiguous ``[K]``.
    """
    _check(x)
    if weight.shape != (x.shape[1],) or bias.shape != (x.shape[1],) or not (weight.is_contiguous()
                                                                           and bias.is_contiguous()):
        raise ValueError(f"weight {tuple(weight.shape)} and bias {tuple(bias.shape)} must be contiguous "
                         f"[{x.shape[1]}]")
    q, scale, block, warps = _outputs(*x.shape, x.device)
    if x.shape[0]:
        _layer_norm_kernel[(x.shape[0],)](x, weight, bias, q.view(torch.uint8), scale, x.shape[1], x.stride(0),
                                          float(eps), TINY, BLOCK=block, num_warps=warps)
    return q, scale
