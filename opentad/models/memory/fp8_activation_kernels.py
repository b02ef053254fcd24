"""Triton kernels of :mod:`.fp8_activations`: GELU or its backward, then the row's e4m3 quantization, in one pass
(needs Triton).

One program per row. The row is held in registers as one piece or three of
``PART`` values (a power of two), so that a row of 6144 values (g's MLP) is
three pieces of 2048 rather than one block of 8192 with a quarter of its
lanes idle: the time of such kernels follows the instructions they issue
(run 32's took 3.5 times the time their bytes need; docs/benchmarks.md, run
33), so idle lanes cost time. (Two or four pieces never pad less than one: a
power of two times two is one.)

Per value: GELU (the exact one, ``0.5 h (1 + erf(h / sqrt 2))``) or its
backward (``g (cdf(h) + h pdf(h))``, ``pdf(h) = exp(-h^2 / 2) / sqrt(2 pi)``)
in float32 from bf16 inputs, rounded to bf16 as the eager op's output is
rounded; then the row is quantized as :func:`.fp8_rows.quantize_rows_reference`
does (``amax``, ``inv = 448 / amax``, ``e4m3(clamp(y * inv))``, ``scale =
amax / 448``).

``erf`` is :func:`erf_f32`, CUDA's own ``erff`` algorithm without its
branches. ``NATIVE`` picks the GPU's conversions (one instruction each;
the e4m3 one saturates, so it needs no clamp); otherwise the integer
arithmetic of :mod:`.fp8_kernels`, which Triton's CPU interpreter computes
correctly. The two give the same bits, except that a NaN's e4m3 code keeps
its sign only in the integer arithmetic. A NaN anywhere in a row makes its
``amax`` (a NaN-propagating maximum), its scale and every value NaN.
"""
import triton
import triton.language as tl

from opentad.models.memory.fp8_kernels import bf16_in, bf16_out, e4m3_code, max_nan, row_amax

#: 1 / sqrt(2) and 1 / sqrt(2 pi) in float32
SQRT_HALF = tl.constexpr(0.70710677)
INV_SQRT_2PI = tl.constexpr(0.3989422804014327)


@triton.jit
def erf_f32(x):
    """``erf(x)`` in float32 by CUDA's ``erff`` algorithm (libdevice ``__nv_erff``: the same polynomials,
    coefficients and order of operations), its two branches computed as selects so no warp diverges.

    ``|x| < 1.00296``: ``x + x P(x^2)``; else ``sign(x) (1 - 2^(-|x| (1 + Q(|x|))))``, ``P``, ``Q`` of degree 6
    evaluated by Horner's rule in fused multiply-adds. The power of two is Triton's ``exp2`` (on the GPU the
    approximate ``ex2.approx.ftz`` that ``erff`` uses: the GPU computes ``erff``'s bits). Triton's CPU
    interpreter rounds each ``tl.fma`` twice and computes ``exp2`` exactly, so there the result is the
    algorithm's, not ``erff``'s bits: within 1.5 units in the last place of ``erf``
    (``tests/models/memory/fp8_activation_cases.py``).
    """
    t = tl.abs(x)
    big = t >= 1.00296
    u = tl.where(big, t, x * x)
    r = tl.fma(tl.where(big, 1.6425845e-05, 8.4834945e-05), u, tl.where(big, -0.00046802105, -0.00082130916))
    r = tl.fma(r, u, tl.where(big, 0.005264764, 0.005213489))
    r = tl.fma(r, u, tl.where(big, -0.034303077, -0.026868774))
    r = tl.fma(r, u, tl.where(big, 0.1532937, 0.11284005))
    r = tl.fma(r, u, tl.where(big, 0.91631305, -0.37612665))
    r = tl.fma(r, u, tl.where(big, 0.62829983, 0.12837915))
    v = tl.where(big, -t, x)
    r = tl.fma(r, v, v)
    tail = 1.0 - tl.math.exp2(r)  # in [0, 1]: its sign bit is clear
    signed = (tail.to(tl.uint32, bitcast=True) | (x.to(tl.uint32, bitcast=True) & 0x80000000)).to(tl.float32,
                                                                                                 bitcast=True)
    return tl.where(big, signed, r)


@triton.jit
def load_piece(ptr, p, cols, PART: tl.constexpr, EVEN: tl.constexpr, NATIVE: tl.constexpr):
    """Piece ``p`` of the bf16 row at ``ptr`` as float32 ``[PART]``, zeros past ``cols`` (no mask with
    ``EVEN``); ``NATIVE`` as :func:`~.fp8_kernels.bf16_in`."""
    offs = p * PART + tl.arange(0, PART)
    if EVEN:
        return bf16_in(tl.load(ptr + offs), NATIVE)
    else:
        return bf16_in(tl.load(ptr + offs, mask=offs < cols, other=0.0), NATIVE)


@triton.jit
def _part(g_ptr, h_ptr, p, cols, PART: tl.constexpr, EVEN: tl.constexpr, BACKWARD: tl.constexpr,
          NATIVE: tl.constexpr):
    """Piece ``p`` of a row: the bf16-rounded activation (or its backward) as float32, ``[PART]``, zeros past
    ``cols``; ``g_ptr``, ``h_ptr`` point at the row."""
    h = load_piece(h_ptr, p, cols, PART, EVEN, NATIVE)
    e = erf_f32(h * SQRT_HALF)
    if BACKWARD:
        g = load_piece(g_ptr, p, cols, PART, EVEN, NATIVE)
        y = g * (0.5 * (1.0 + e) + h * (tl.exp(-0.5 * h * h) * INV_SQRT_2PI))
    else:
        y = 0.5 * h * (1.0 + e)
    return bf16_out(y, NATIVE)


@triton.jit
def _store_part(y, inv, q_ptr, p, cols, PART: tl.constexpr, EVEN: tl.constexpr, NATIVE: tl.constexpr):
    """Piece ``p`` of the quantized row: ``e4m3(clamp(y * inv))`` as uint8 bits at ``q_ptr`` (the row)."""
    offs = p * PART + tl.arange(0, PART)
    code = e4m3_code(y * inv, NATIVE)
    if EVEN:
        tl.store(q_ptr + offs, code)
    else:
        tl.store(q_ptr + offs, code, mask=offs < cols)


@triton.jit
def store_quantized_pieces(y0, y1, y2, q_ptr, scale_ptr, row, cols, tiny, PART: tl.constexpr, PARTS: tl.constexpr,
                           EVEN: tl.constexpr, NATIVE: tl.constexpr):
    """Quantize row ``row`` held as ``PARTS`` float32 pieces ``y0`` (, ``y1``, ``y2``: ignored for one piece;
    zeros past ``cols``) into ``q_ptr`` (uint8 e4m3 bits, ``cols`` a row, contiguous) and ``scale_ptr[row]``:
    ``amax`` over the pieces (NaN if one holds it; at least ``tiny``), ``e4m3(clamp(y * 448 / amax))``,
    ``scale = amax / 448``. Also the fused layer norm's last step (:mod:`.fp8_norm_kernels`)."""
    amax = row_amax(y0)
    if PARTS == 3:
        amax = max_nan(max_nan(amax, row_amax(y1)), row_amax(y2))
    amax = tl.where(amax < tiny, tiny, amax)  # NaN stays NaN
    inv = tl.div_rn(448.0, amax)
    q_row = q_ptr + row * cols
    _store_part(y0, inv, q_row, 0, cols, PART, EVEN, NATIVE)
    if PARTS == 3:
        _store_part(y1, inv, q_row, 1, cols, PART, EVEN, NATIVE)
        _store_part(y2, inv, q_row, 2, cols, PART, EVEN, NATIVE)
    tl.store(scale_ptr + row, tl.div_rn(amax, 448.0))


@triton.jit
def gelu_rows_kernel(g_ptr, h_ptr, q_ptr, scale_ptr, cols, g_stride, h_stride, tiny, PART: tl.constexpr,
                     PARTS: tl.constexpr, EVEN: tl.constexpr, BACKWARD: tl.constexpr, NATIVE: tl.constexpr):
    """Row ``r`` (the program id) of ``quantize(bf16(gelu(h)))``, or with ``BACKWARD`` of
    ``quantize(bf16(gelu_backward(g, h)))``.

    Args:
        g_ptr, h_ptr: bf16 ``[R, cols]``, unit stride along a row (``g_ptr`` read only with ``BACKWARD``).
        q_ptr: uint8 ``[R, cols]`` contiguous (the e4m3 bits).
        scale_ptr: float32 ``[R]``.
        tiny: the smallest ``amax`` used (an all-zero row gets zeros, not NaN).
        PART, PARTS: the row's pieces, ``PART`` a power of two, ``PARTS`` 1 or 3, ``PART * PARTS >= cols``;
            ``EVEN``: ``PART * PARTS == cols`` (no masks).
        NATIVE: the GPU's conversions instead of integer arithmetic (module docstring).
    """
    tl.static_assert((PARTS == 1) or (PARTS == 3), "PARTS must be 1 or 3")
    row = tl.program_id(0).to(tl.int64)
    g_row, h_row = g_ptr + row * g_stride, h_ptr + row * h_stride
    y0 = _part(g_row, h_row, 0, cols, PART, EVEN, BACKWARD, NATIVE)
    y1, y2 = y0, y0  # placeholders for one piece (never stored)
    if PARTS == 3:
        y1 = _part(g_row, h_row, 1, cols, PART, EVEN, BACKWARD, NATIVE)
        y2 = _part(g_row, h_row, 2, cols, PART, EVEN, BACKWARD, NATIVE)
    store_quantized_pieces(y0, y1, y2, q_ptr, scale_ptr, row, cols, tiny, PART, PARTS, EVEN, NATIVE)
