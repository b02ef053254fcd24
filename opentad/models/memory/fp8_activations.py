"""GELU and its backward fused with the fp8 row quantization that follows them (``custom.fused_fp8_mlp``).

In a frozen MLP with fp8 products in both directions (``frozen_fp8="all"``)
GELU's output is read only by ``fc2``'s product and ``gelu_backward``'s only by
``fc1``'s input-gradient product, each of which first quantizes its rows to
e4m3 (:func:`~.fp8_rows.quantize_rows`). These ops compute the activation
and quantize it in one pass over the rows: the bf16 activation is never
written, and each input row is read once::

    gelu_fp8_rows(h)                  = quantize_rows(gelu(h))                     h    [R, K] bf16
    gelu_backward_fp8_rows(grad, h)   = quantize_rows(gelu_backward(grad, h))     grad [R, K] bf16
                                      -> (q [R, K] e4m3, scale [R, 1] float32)

On CUDA (and on the CPU under ``TRITON_INTERPRET=1``) one Triton kernel of
:mod:`.fp8_activation_kernels` computes each, one program per row; elsewhere, or for
rows it does not take (not bf16, not unit stride along K, K > 16384), the
reference: PyTorch's op, then :func:`~.fp8_rows.quantize_rows_reference`.
The kernel evaluates the activation in float32 with its own ``erf`` and
``exp``, rounds it to bf16 as PyTorch's op rounds its output, then quantizes
as the reference does: a value can differ from the reference by one e4m3
step where the two float32 evaluations straddle a bf16 rounding boundary
(tests/models/memory/fp8_activation_cases.py states the error model).

Both are registered as PyTorch custom ops (``opentad::gelu_fp8_rows``,
``opentad::gelu_backward_fp8_rows``, where ``torch.library.custom_op``
exists: torch 2.4 and later), so a compiled block calls them as they are
instead of tracing into them: Inductor's own fusion of GELU with the
quantization reads each row twice (docs/benchmarks.md, runs 28 to 30).
"""
import contextlib
import logging
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from opentad.models.memory.fp8_rows import TINY, empty_rows, kernel_device, quantize_rows_reference

logger = logging.getLogger(__name__)

__all__ = ["gelu_fp8_rows", "gelu_backward_fp8_rows", "gelu_rows_reference", "gelu_backward_rows_reference",
           "launch_gelu_rows", "activation_parts", "kernel_roundings", "CUSTOM_OPS"]

#: whether the ops are torch custom ops (else plain functions: compiled blocks then keep Inductor's fusion)
CUSTOM_OPS = hasattr(torch.library, "custom_op")


def gelu_rows_reference(h: Tensor) -> Tuple[Tensor, Tensor]:
    """``quantize_rows_reference(F.gelu(h))``: what :func:`gelu_fp8_rows` computes, in PyTorch ops."""
    return quantize_rows_reference(F.gelu(h))


def gelu_backward_rows_reference(grad: Tensor, h: Tensor) -> Tuple[Tensor, Tensor]:
    """``quantize_rows_reference(gelu_backward(grad, h))``: :func:`gelu_backward_fp8_rows` in PyTorch ops."""
    return quantize_rows_reference(torch.ops.aten.gelu_backward(grad, h))


def _check_rows(*tensors: Tensor) -> None:
    """Raises ValueError unless every tensor is ``[R, K]`` and all have one shape."""
    if any(t.dim() != 2 for t in tensors) or any(t.shape != tensors[0].shape for t in tensors[1:]):
        raise ValueError(f"rows [R, K] of one shape expected, got shapes {[tuple(t.shape) for t in tensors]}")


def _kernel_takes(*tensors: Tensor) -> bool:
    """Whether the Triton kernels take these rows: bf16, unit stride along K, K <= 16384, on their device."""
    return kernel_device() == tensors[0].device.type and all(
        t.dtype == torch.bfloat16 and t.stride(1) == 1 and t.shape[1] <= 16384 for t in tensors)


def activation_parts(cols: int) -> Tuple[int, int, int]:
    """The launch shape of :func:`~.fp8_activation_kernels.gelu_rows_kernel` for rows of ``cols`` values.

    Args:
        cols: values a row (>= 1).

    Returns:
        ``(PART, PARTS, num_warps)``: one piece or three of ``PART`` values (a power of two, at least 16),
        whichever leaves fewer lanes idle (one on a tie); a warp per 512 values of a piece, 1 to 8 (16 values a
        thread in each piece from ``PART`` 512 up to 4096; g's 6144: three pieces of 2048, 4 warps).
    """
    one = max(16, 1 << (cols - 1).bit_length())
    third = max(16, 1 << (-(-cols // 3) - 1).bit_length())
    part, parts = (third, 3) if 3 * third < one else (one, 1)
    return part, parts, max(1, min(8, part // 512))


def launch_gelu_rows(h: Tensor, *, native_casts: Optional[bool] = None, num_warps: Optional[int] = None,
                     grad: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """The Triton kernel of :func:`gelu_fp8_rows` (or, with ``grad``, :func:`gelu_backward_fp8_rows`) with its
    launch settings; the ops call it with the defaults, the tests and the kernel benchmark with others.

    Args:
        h: ``[R, K]`` bf16 rows the kernel takes (``_kernel_takes``).
        native_casts: the GPU's own bf16 and e4m3 conversions (default on CUDA) or the integer arithmetic
            (the same bits but for a NaN's sign; the only choice in Triton's CPU interpreter, whose casts truncate).
        num_warps: warps a program (default: :func:`activation_parts`'s).
        grad: ``[R, K]`` bf16, the gradient of GELU's output: ``gelu_backward``'s kernel.

    Returns:
        ``(q [R, K] e4m3, scale [R, 1] float32)``.

    Raises:
        ValueError: ``native_casts`` off CUDA, or ``num_warps`` not a power of two.
    """
    from opentad.models.memory.fp8_activation_kernels import gelu_rows_kernel

    native = h.is_cuda if native_casts is None else native_casts
    _check_native(native, h)
    if num_warps is not None and (num_warps < 1 or num_warps & (num_warps - 1)):
        raise ValueError(f"num_warps must be a power of two, got {num_warps}")

    rows, cols = h.shape
    q, scale = empty_rows(rows, cols, h.device)
    if rows:
        part, parts, warps = activation_parts(cols)
        g = h if grad is None else grad
        with torch.cuda.device(h.device) if h.is_cuda else contextlib.nullcontext():
            gelu_rows_kernel[(rows,)](g, h, q.view(torch.uint8), scale, cols, g.stride(0), h.stride(0), TINY,
                                      PART=part, PARTS=parts, EVEN=part * parts == cols, BACKWARD=grad is not None,
                                      NATIVE=native, num_warps=warps if num_warps is None else num_warps)
    return q, scale


def _gelu(h: Tensor) -> Tuple[Tensor, Tensor]:
    _check_rows(h)
    return launch_gelu_rows(h) if _kernel_takes(h) else gelu_rows_reference(h)


def _gelu_backward(grad: Tensor, h: Tensor) -> Tuple[Tensor, Tensor]:
    _check_rows(grad, h)
    return launch_gelu_rows(h, grad=grad) if _kernel_takes(grad, h) else gelu_backward_rows_reference(grad, h)


def _fake_rows(*tensors: Tensor) -> Tuple[Tensor, Tensor]:
    """The outputs' shapes and dtypes, for tracing (no data)."""
    _check_rows(*tensors)
    h = tensors[-1]
    return h.new_empty(h.shape, dtype=torch.float8_e4m3fn), h.new_empty((h.shape[0], 1), dtype=torch.float32)


def _register(name: str, impl: Callable) -> Callable:
    """``impl`` as the custom op ``opentad::name`` (with a fake for tracing), or as it is without custom ops."""
    if not CUSTOM_OPS:
        return impl
    op = torch.library.custom_op(f"opentad::{name}", mutates_args=())(impl)
    op.register_fake(_fake_rows)
    return op


gelu_fp8_rows = _register("gelu_fp8_rows", _gelu)
gelu_fp8_rows.__doc__ = """``quantize_rows(gelu(h))`` for ``h [R, K]`` in one pass (module docstring).

    Returns:
        ``(q [R, K] e4m3 contiguous, scale [R, 1] float32)``.

    Raises:
        ValueError: ``h`` is not ``[R, K]``.
    """
gelu_backward_fp8_rows = _register("gelu_backward_fp8_rows", _gelu_backward)
gelu_backward_fp8_rows.__doc__ = """``quantize_rows(gelu_backward(grad, h))`` for ``grad``, ``h`` ``[R, K]`` in one
    pass (module docstring).

    Returns:
        ``(q [R, K] e4m3 contiguous, scale [R, 1] float32)``.

    Raises:
        ValueError: ``grad`` and ``h`` not ``[R, K]`` of one shape.
    """


def kernel_roundings(v: Tensor, *, native_casts: bool = False) -> Tuple[Tensor, Tensor]:
    """The kernels' roundings of float32 values, for the tests: ``(bf16 value as float32, e4m3 code as uint8 of
    the value clamped to [-448, 448])``, with the integer arithmetic or (``native_casts``, CUDA) the GPU's own.

    Raises:
        ValueError: ``v`` is not a contiguous float32 tensor, no Triton kernel runs on its device, or
            ``native_casts`` off CUDA.
    """
    if v.dtype != torch.float32 or not v.is_contiguous() or kernel_device() != v.device.type:
        raise ValueError(f"contiguous float32 values on the kernels' device ({kernel_device()}) expected, got "
                         f"{v.dtype} on {v.device}, contiguous={v.is_contiguous()}")
    _check_native(native_casts, v)
    from opentad.models.memory.fp8_kernels import roundings_kernel

    bf16, e4m3 = torch.empty_like(v), torch.empty(v.shape, dtype=torch.uint8, device=v.device)
    if v.numel():
        roundings_kernel[((v.numel() + 1023) // 1024,)](v, bf16, e4m3, v.numel(), BLOCK=1024, NATIVE=native_casts)
    return bf16, e4m3


def _check_native(native_casts: bool, t: Tensor) -> None:
    """Raises ValueError for ``native_casts`` off CUDA (Triton's interpreter truncates in its own casts)."""
    if native_casts and not t.is_cuda:
        raise ValueError(f"native_casts needs CUDA (Triton's interpreter truncates in its casts), got {t.device}")
