"""One-pass Triton kernels of the fp8 row fusions that compiled blocks leave to Inductor (the benchmark's column).

Inside a compiled block with ``frozen_fp8`` the rows of each frozen product's
input are quantized to e4m3 (:func:`opentad.models.memory.fp8_rows.quantize_rows_reference`)
by a kernel Inductor fuses with what precedes them: the layer norm before
``qkv`` and ``fc1``, GELU before ``fc2``, ``gelu_backward`` before ``fc1``'s
input gradient. Inductor reads a row of more than 1024 values twice (its
maximum, then its values) unless ``compile_blocks="multi-kernel"`` picks a
one-pass kernel, which for GELU's 6144-value rows measured slower (run 28).
The one-pass kernels hold a row in registers and write only the quantized
row and its scale. GELU's and ``gelu_backward``'s are the library's
(:mod:`opentad.models.memory.fp8_activations`, which ``custom.fused_fp8_mlp``
puts in the blocks); the layer norm's is here, a candidate the blocks do not
use, holding its row in pieces with the GPU's own conversions on CUDA as the
library's kernels do (counted for sm90: 26.8 instructions a value at g's
width, 1408, against 108 for its first version). Its mean and variance are
two float32 sums over the row (PyTorch's Welford sums differ in the last
float32 bits: bf16 outputs may differ by one unit in the last place), then
bf16 rounding and the row quantization as the library's kernels do. ``tools/benchmark_kernels.py --fusions`` times
the three beside Inductor's on CUDA.
"""
from __future__ import annotations

from typing import Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from opentad.models.memory.fp8_activation_kernels import load_piece, store_quantized_pieces
from opentad.models.memory.fp8_activations import activation_parts, gelu_backward_fp8_rows, gelu_fp8_rows
from opentad.models.memory.fp8_kernels import bf16_out
from opentad.models.memory.fp8_rows import TINY, empty_rows

__all__ = ["gelu_rows", "gelu_backward_rows", "layer_norm_rows"]

gelu_rows = gelu_fp8_rows
gelu_backward_rows = gelu_backward_fp8_rows


@triton.jit
def _normed(d, rstd, w_ptr, b_ptr, p, cols, PART: tl.constexpr, EVEN: tl.constexpr, NATIVE: tl.constexpr):
    """Piece ``p`` of ``bf16(d * rstd * w + b)`` as float32 (zeros past ``cols``)."""
    offs = p * PART + tl.arange(0, PART)
    y = d * rstd * load_piece(w_ptr, p, cols, PART, EVEN, NATIVE) + load_piece(b_ptr, p, cols, PART, EVEN, NATIVE)
    return bf16_out(tl.where(offs < cols, y, 0.0), NATIVE)


@triton.jit
def _layer_norm_kernel(x_ptr, w_ptr, b_ptr, q_ptr, scale_ptr, cols, x_stride, eps, tiny, PART: tl.constexpr,
                       PARTS: tl.constexpr, EVEN: tl.constexpr, NATIVE: tl.constexpr):
    """Row ``r`` (the program id) of ``quantize(bf16(layer_norm(x)))``, the row in ``PARTS`` pieces of ``PART``
    (as the library's activation kernels hold theirs); ``NATIVE``: the GPU's conversions."""
    tl.static_assert((PARTS == 1) or (PARTS == 3), "PARTS must be 1 or 3")
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * x_stride
    offs = tl.arange(0, PART)
    x0 = load_piece(x_row, 0, cols, PART, EVEN, NATIVE)
    x1, x2 = x0, x0  # placeholders for one piece
    total = tl.sum(x0, axis=0)
    if PARTS == 3:
        x1 = load_piece(x_row, 1, cols, PART, EVEN, NATIVE)
        x2 = load_piece(x_row, 2, cols, PART, EVEN, NATIVE)
        total += tl.sum(x1, axis=0) + tl.sum(x2, axis=0)
    mean = total / cols
    d0 = tl.where(offs < cols, x0 - mean, 0.0)
    squares = tl.sum(d0 * d0, axis=0)
    d1, d2 = d0, d0
    if PARTS == 3:
        d1 = tl.where(offs + PART < cols, x1 - mean, 0.0)
        d2 = tl.where(offs + 2 * PART < cols, x2 - mean, 0.0)
        squares += tl.sum(d1 * d1, axis=0) + tl.sum(d2 * d2, axis=0)
    rstd = 1.0 / tl.sqrt_rn(squares / cols + eps)
    y0 = _normed(d0, rstd, w_ptr, b_ptr, 0, cols, PART, EVEN, NATIVE)
    y1, y2 = y0, y0
    if PARTS == 3:
        y1 = _normed(d1, rstd, w_ptr, b_ptr, 1, cols, PART, EVEN, NATIVE)
        y2 = _normed(d2, rstd, w_ptr, b_ptr, 2, cols, PART, EVEN, NATIVE)
    store_quantized_pieces(y0, y1, y2, q_ptr, scale_ptr, row, cols, tiny, PART, PARTS, EVEN, NATIVE)


def layer_norm_rows(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-6) -> Tuple[Tensor, Tensor]:
    """``quantize_rows_reference(F.layer_norm(x, (K,), weight, bias, eps))`` for bf16 ``x [R, K]`` in one pass.

    Returns:
        ``(q [R, K] e4m3, scale [R, 1] float32)``.

    Raises:
        ValueError: ``x`` not bf16 ``[R, K]`` with unit stride along K and ``K <= 16384``, or ``weight``/``bias``
            not contiguous bf16 ``[K]``.
    """
    if x.dim() != 2 or x.stride(1) != 1 or x.shape[1] > 16384 or x.dtype != torch.bfloat16:
        raise ValueError(f"bf16 rows [R, K] with unit stride along K and K <= 16384 expected, got {x.dtype} "
                         f"shape {tuple(x.shape)} strides {x.stride()}")
    if weight.shape != (x.shape[1],) or bias.shape != (x.shape[1],) or not (weight.is_contiguous()
                                                                           and bias.is_contiguous()):
        raise ValueError(f"weight {tuple(weight.shape)} and bias {tuple(bias.shape)} must be contiguous "
                         f"[{x.shape[1]}]")
    if weight.dtype != torch.bfloat16 or bias.dtype != torch.bfloat16:
        raise ValueError(f"bf16 weight and bias expected, got {weight.dtype} and {bias.dtype}")
    q, scale = empty_rows(*x.shape, x.device)
    if x.shape[0]:
        part, parts, warps = activation_parts(x.shape[1])
        _layer_norm_kernel[(x.shape[0],)](x, weight, bias, q.view(torch.uint8), scale, x.shape[1], x.stride(0),
                                          float(eps), TINY, PART=part, PARTS=parts, EVEN=part * parts == x.shape[1],
                                          NATIVE=x.is_cuda, num_warps=warps)
    return q, scale
