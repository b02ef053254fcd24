"""fp8 e4m3 rows and their scaled products: the arithmetic of the frozen layers' fp8 path (``custom.frozen_fp8``).

Each row of an operand is scaled so that its largest magnitude maps to 448,
e4m3's largest value, and rounded to e4m3; a product of two such operands is
``torch._scaled_mm``'s (float32 accumulation, the row scales applied to the
result, bf16 out)::

    a [R, K] -> aq e4m3 [R, K], sa [R, 1]      (quantize_rows: one Triton kernel on CUDA)
    W [M, K] -> Wq e4m3 [M, K], sw [1, M]      (once per weight, by the caller)
    rows_product(a, Wq, sw, b) = (aq * sa) @ (Wq * sw).T + b

:mod:`.fp8_matmul` builds the layers' forward and backward products from
these. Everything here takes and returns tensors only, so it traces into a
compiled block (the quantizer then runs as PyTorch ops, which the compiler
fuses with the operations before it).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
from typing import Optional, Tuple

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

__all__ = ["FP8", "FP8_MAX", "TINY", "quantize_rows_reference", "quantize_rows", "fp8_supported", "rows_product",
           "scaled_rows_product", "kernel_device", "row_kernel_shape", "empty_rows"]

FP8 = torch.float8_e4m3fn
#: e4m3's largest finite value: each row's largest magnitude is scaled to it
FP8_MAX = 448.0
#: the smallest row maximum used for a scale (an all-zero row quantizes to zeros, not NaN)
TINY = 2.0**-100


def quantize_rows_reference(x: Tensor) -> Tuple[Tensor, Tensor]:
    """Each row of ``x`` in fp8 e4m3 with its own float32 scale, in PyTorch ops (the CPU path and the tests' reference).

    Args:
        x: ``[R, K]`` floating point.

    Returns:
        ``(q, scale)``: ``q`` ``[R, K]`` e4m3, contiguous, with ``q * scale ~ x``, ``scale`` ``[R, 1]`` float32
        ``= max(amax_r, TINY) / 448``; ``q = e4m3(clamp(x * (448 / max(amax_r, TINY)), -448, 448))``.
    """
    x32 = x.float().contiguous()  # a transposed weight too: ``q`` takes this layout
    amax = x32.abs().amax(dim=1, keepdim=True).clamp(min=TINY)
    inv = torch.full_like(amax, FP8_MAX) / amax
    q = (x32 * inv).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    # tensor by tensor: CUDA divides a tensor by a Python scalar as a product with its rounded reciprocal
    return q, amax / torch.full_like(amax, FP8_MAX)


@functools.lru_cache(maxsize=None)
def kernel_device() -> Optional[str]:
    """The device type the Triton kernels of :mod:`.fp8_kernels` run on: ``"cuda"``, ``"cpu"`` under
    ``TRITON_INTERPRET=1`` (Triton's interpreter), or None without a working Triton (imported on first use)."""
    try:
        importlib.import_module("opentad.models.memory.fp8_kernels")
    except Exception:  # noqa: BLE001  (no Triton, or one that fails to import: PyTorch ops)
        return None
    return "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"


def row_kernel_shape(cols: int) -> Tuple[int, int]:
    """``(BLOCK, num_warps)`` of a kernel of :mod:`.fp8_kernels` that holds a row of ``cols`` values."""
    block = max(16, 1 << (cols - 1).bit_length())
    return block, (8 if block >= 4096 else 4)


def empty_rows(rows: int, cols: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    """Uninitialised ``(q [rows, cols] e4m3, scale [rows, 1] float32)``."""
    return (torch.empty((rows, cols), dtype=FP8, device=device),
            torch.empty((rows, 1), dtype=torch.float32, device=device))


def quantize_rows(x: Tensor) -> Tuple[Tensor, Tensor]:
    """:func:`quantize_rows_reference` in one Triton kernel where it runs (CUDA; CPU under ``TRITON_INTERPRET=1``).

    Args:
        x: ``[R, K]`` with unit stride along K.

    Returns:
        ``(q [R, K] e4m3 contiguous, scale [R, 1] float32)``.
    """
    if torch.compiler.is_compiling():  # traced: PyTorch ops, which the compiler fuses
        return quantize_rows_reference(x)
    if kernel_device() != x.device.type or x.stride(1) != 1 or x.shape[1] > 16384:
        return quantize_rows_reference(x)
    from opentad.models.memory.fp8_kernels import quantize_rows_kernel

    rows, cols = x.shape
    q, scale = empty_rows(rows, cols, x.device)
    if rows:
        block, warps = row_kernel_shape(cols)
        with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
            quantize_rows_kernel[(rows,)](x, q.view(torch.uint8), scale, cols, x.stride(0), TINY, BLOCK=block,
                                          num_warps=warps)
    return q, scale


@functools.lru_cache(maxsize=None)
def fp8_supported(device: torch.device) -> bool:
    """Whether ``torch._scaled_mm`` with row scales runs on ``device`` (the CPU; CUDA of capability >= 8.9).

    Logs a warning, once per device, where it does not: the layers then keep their bf16 products.
    """
    ok = hasattr(torch, "_scaled_mm") and (
        device.type == "cpu" or (device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)))
    if not ok:
        logger.warning("frozen_fp8: %s has no fp8 matrix products (CUDA compute capability 8.9 or more, or the CPU); "
                       "the frozen 4-bit layers keep their bf16 products there", device)
    return ok


def rows_product(a: Tensor, weight_q: Tensor, weight_scale: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``a @ (weight_q * weight_scale).T + bias`` with the rows of ``a`` quantized to e4m3 (:func:`quantize_rows`).

    Args:
        a: ``[R, K]`` bf16, unit stride along K (made contiguous otherwise).
        weight_q: ``[M, K]`` e4m3, contiguous (its transpose is the column-major operand cuBLASLt takes).
        weight_scale: ``[1, M]`` float32.
        bias: ``[M]`` bf16 or None.

    Returns:
        ``[R, M]`` bf16, computed with autocast off.
    """
    if a.stride(-1) != 1:
        a = a.contiguous()
    return scaled_rows_product(*quantize_rows(a), weight_q, weight_scale, bias)


def scaled_rows_product(a_q: Tensor, a_scale: Tensor, weight_q: Tensor, weight_scale: Tensor,
                        bias: Optional[Tensor] = None) -> Tensor:
    """:func:`rows_product` of rows quantized already: ``(a_q * a_scale) @ (weight_q * weight_scale).T + bias``.

    Args:
        a_q: ``[R, K]`` e4m3, contiguous.
        a_scale: ``[R, 1]`` float32.
        weight_q, weight_scale, bias: as :func:`rows_product`.

    Returns:
        ``[R, M]`` bf16, computed with autocast off.
    """
    with torch.autocast(a_q.device.type, enabled=False):
        return torch._scaled_mm(a_q, weight_q.t(), scale_a=a_scale, scale_b=weight_scale, bias=bias,
                                out_dtype=torch.bfloat16)
