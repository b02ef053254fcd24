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
use: its mean and variance are two float32 sums over the row (PyTorch's
Welford sums differ in the last float32 bits: bf16 outputs may differ by one
unit in the last place), then bf16 rounding and the row quantization as
the library's kernels do. ``tools/benchmark_kernels.py --fusions`` times
the three beside Inductor's on CUDA.
"""
from __future__ import annotations

from typing import Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from opentad.models.memory.fp8_activations import gelu_backward_fp8_rows, gelu_fp8_rows
from opentad.models.memory.fp8_kernels import bf16_value, store_quantized_row
from opentad.models.memory.fp8_rows import TINY, empty_rows, row_kernel_shape
from opentad.models.memory.fused_residual_kernels import widen_bf16

__all__ = ["gelu_rows", "gelu_backward_rows", "layer_norm_rows"]

gelu_rows = gelu_fp8_rows
gelu_backward_rows = gelu_backward_fp8_rows


@triton.jit
def _layer_norm_kernel(x_ptr, w_ptr, b_ptr, q_ptr, scale_ptr, cols, x_stride, eps, tiny, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < cols
    x = widen_bf16(tl.load(x_ptr + row * x_stride + offs, mask=mask, other=0.0))
    mean = tl.sum(x, axis=0) / cols
    diff = tl.where(mask, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt_rn(tl.sum(diff * diff, axis=0) / cols + eps)
    w = widen_bf16(tl.load(w_ptr + offs, mask=mask, other=0.0))
    b = widen_bf16(tl.load(b_ptr + offs, mask=mask, other=0.0))
    y = tl.where(mask, diff * rstd * w + b, 0.0)
    store_quantized_row(bf16_value(y), offs, mask, q_ptr, scale_ptr, row, cols, tiny, False)


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
        block, warps = row_kernel_shape(x.shape[1])
        _layer_norm_kernel[(x.shape[0],)](x, weight, bias, q.view(torch.uint8), scale, x.shape[1], x.stride(0),
                                          float(eps), TINY, BLOCK=block, num_warps=warps)
    return q, scale
