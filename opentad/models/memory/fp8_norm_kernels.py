"""The Triton kernel of :mod:`.fp8_norm`: a layer norm, then its output's e4m3 row quantization, in one pass
(needs Triton).

One program per row; the row is held in registers as one piece or three of
``PART`` values, as :mod:`.fp8_activation_kernels` holds its rows (ViT-g's
1408 channels: three pieces of 512, one warp). Per row: the mean and the
variance as two float32 sums (the mean first, then the squared deviations
from it; PyTorch sums by Welford's method, so the two differ in the last
float32 bits), ``rstd = 1 / sqrt(var + eps)``, each division and the root
correctly rounded (``div_rn``, ``sqrt_rn``: not the GPU's approximate
division), each value
``(x - mean) * rstd * w + b`` in float32 rounded to bf16 as the eager bf16
norm rounds its output, then the quantization of
:func:`~.fp8_rows.quantize_rows_reference`
(:func:`~.fp8_activation_kernels.store_quantized_pieces`). The mean and
``rstd`` are stored for the norm's backward. Counted for sm90: 25.0
instructions a value at 1408 (``tools/count_instructions.py``).
"""
import triton
import triton.language as tl

from opentad.models.memory.fp8_activation_kernels import load_piece, store_quantized_pieces
from opentad.models.memory.fp8_kernels import bf16_out


@triton.jit
def _normed(d, rstd, w_ptr, b_ptr, p, cols, PART: tl.constexpr, EVEN: tl.constexpr, NATIVE: tl.constexpr):
    """Piece ``p`` of ``bf16(d * rstd * w + b)`` as float32 (zeros past ``cols``); ``d``: the deviations."""
    offs = p * PART + tl.arange(0, PART)
    y = d * rstd * load_piece(w_ptr, p, cols, PART, EVEN, NATIVE) + load_piece(b_ptr, p, cols, PART, EVEN, NATIVE)
    return bf16_out(tl.where(offs < cols, y, 0.0), NATIVE)


@triton.jit
def _deviations(x, mean, p, cols, PART: tl.constexpr):
    """Piece ``p`` of ``x - mean`` (zeros past ``cols``)."""
    offs = p * PART + tl.arange(0, PART)
    return tl.where(offs < cols, x - mean, 0.0)


@triton.jit
def layer_norm_rows_kernel(x_ptr, w_ptr, b_ptr, q_ptr, scale_ptr, mean_ptr, rstd_ptr, cols, x_stride, eps, tiny,
                           PART: tl.constexpr, PARTS: tl.constexpr, EVEN: tl.constexpr, NATIVE: tl.constexpr):
    """Row ``r`` (the program id) of ``quantize(bf16(layer_norm(x)))``, with the row's mean and ``rstd``.

    Args:
        x_ptr: bf16 ``[R, cols]``, unit stride along a row.
        w_ptr, b_ptr: bf16 ``[cols]`` contiguous, the norm's weight and bias.
        q_ptr: uint8 ``[R, cols]`` contiguous (the e4m3 bits).
        scale_ptr, mean_ptr, rstd_ptr: float32 ``[R]``.
        eps: added to the variance.
        tiny: the smallest ``amax`` used (an all-zero row gets zeros, not NaN).
        PART, PARTS, EVEN, NATIVE: as :func:`~.fp8_activation_kernels.gelu_rows_kernel`'s.
    """
    tl.static_assert((PARTS == 1) or (PARTS == 3), "PARTS must be 1 or 3")
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * x_stride
    x0 = load_piece(x_row, 0, cols, PART, EVEN, NATIVE)
    x1, x2 = x0, x0  # placeholders for one piece (never used)
    total = tl.sum(x0, axis=0)
    if PARTS == 3:
        x1 = load_piece(x_row, 1, cols, PART, EVEN, NATIVE)
        x2 = load_piece(x_row, 2, cols, PART, EVEN, NATIVE)
        total += tl.sum(x1, axis=0) + tl.sum(x2, axis=0)
    mean = tl.div_rn(total, cols.to(tl.float32))
    d0 = _deviations(x0, mean, 0, cols, PART)
    squares = tl.sum(d0 * d0, axis=0)
    d1, d2 = d0, d0
    if PARTS == 3:
        d1 = _deviations(x1, mean, 1, cols, PART)
        d2 = _deviations(x2, mean, 2, cols, PART)
        squares += tl.sum(d1 * d1, axis=0) + tl.sum(d2 * d2, axis=0)
    rstd = tl.div_rn(1.0, tl.sqrt_rn(tl.div_rn(squares, cols.to(tl.float32)) + eps))
    y0 = _normed(d0, rstd, w_ptr, b_ptr, 0, cols, PART, EVEN, NATIVE)
    y1, y2 = y0, y0
    if PARTS == 3:
        y1 = _normed(d1, rstd, w_ptr, b_ptr, 1, cols, PART, EVEN, NATIVE)
        y2 = _normed(d2, rstd, w_ptr, b_ptr, 2, cols, PART, EVEN, NATIVE)
    store_quantized_pieces(y0, y1, y2, q_ptr, scale_ptr, row, cols, tiny, PART, PARTS, EVEN, NATIVE)
    tl.store(mean_ptr + row, mean)
    tl.store(rstd_ptr + row, rstd)
