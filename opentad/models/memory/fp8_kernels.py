"""Triton kernels of :mod:`.fp8_rows` and :mod:`.fp8_activations`: rows to fp8 e4m3 with one scale per row,
alone or after GELU or its backward (needs Triton).

One program per row, the whole row in registers (rows of up to a few
thousand values: a ViT's width or its MLP's). The arithmetic is that of
:func:`.fp8_rows.quantize_rows_reference`, step for step: the row's
largest magnitude ``amax`` (at least :data:`~.fp8_rows.TINY`),
``inv = 448 / amax`` and ``scale = amax / 448`` each one correctly rounded
float32 division, ``q = e4m3(clamp(x * inv, -448, 448))`` rounded to nearest,
ties to even. The rounding to e4m3 is written in integer arithmetic, as
PyTorch's cast rounds, so that Triton's CPU interpreter (whose own float8
cast does not carry a rounded-up significand into the exponent) computes
what the GPU computes. A NaN in a row makes its scale and every value NaN, as
in the reference (Triton's min/max would drop it: comparisons are used instead).

The activation kernels compute GELU (the exact one, ``0.5 h (1 + erf(h /
sqrt 2))``) or its backward (``g (cdf(h) + h pdf(h))``, ``pdf(h) = exp(-h^2 /
2) / sqrt(2 pi)``) in float32 from bf16 inputs, round it to bf16 as the eager
op's output is rounded, and quantize that row: one read of each input, one
write of the e4m3 row and its scale.
"""
import triton
import triton.language as tl

from opentad.models.memory.fused_residual_kernels import round_bf16, widen_bf16


@triton.jit
def round_e4m3(v):
    """float32 -> e4m3fn bits (uint8), to nearest, ties to even, as PyTorch's cast.

    Args:
        v: float32 values with ``|v| <= 448`` or NaN (NaN gives ``0x7F`` with its sign, as PyTorch's cast).

    Returns:
        the uint8 bit patterns.
    """
    bits = v.to(tl.uint32, bitcast=True)
    sign = (bits >> 24) & 0x80
    mag = bits & 0x7FFFFFFF
    # normal range (|v| >= 2^-6): drop 20 of the 23 significand bits with ties to even, then rebias the
    # exponent from float32's 127 to e4m3's 7 (a carry out of the significand moves into the exponent)
    normal = ((mag + 0x7FFFF + ((mag >> 20) & 1)) >> 20) - (120 << 3)
    # subnormals are multiples of 2^-9: |v| * 2^9 (exact) rounded to an integer by float32 addition of 2^23
    sub = ((tl.abs(v) * 512.0 + 8388608.0).to(tl.uint32, bitcast=True) - 0x4B000000)
    code = tl.where(mag >= 0x3C800000, normal, sub)  # 0x3C800000: 2^-6 as float32 bits
    code = tl.where(mag > 0x7F800000, 0x7F, code)  # NaN
    return (code | sign).to(tl.uint8)


@triton.jit
def e4m3_code(v, NATIVE: tl.constexpr):
    """:func:`round_e4m3`, or with ``NATIVE`` the GPU's own conversion (round to nearest, ties to even; NaN
    given ``0x7F`` with its sign, as PyTorch's cast). The integer arithmetic is what Triton's CPU interpreter
    computes correctly; the native conversion is one instruction on the GPU (a benchmark variant: not the
    library's default until measured and checked on a GPU)."""
    if NATIVE:
        code = v.to(tl.float8e4nv).to(tl.uint8, bitcast=True)
        sign = ((v.to(tl.uint32, bitcast=True) >> 24) & 0x80).to(tl.uint8)
        return tl.where(v != v, sign | 0x7F, code)
    else:
        return round_e4m3(v)


@triton.jit
def store_quantized_row(x, offs, mask, q_ptr, scale_ptr, row, cols, tiny, NATIVE: tl.constexpr):
    """Quantize the float32 row ``x`` (zeros where ``mask`` is off) into row ``row`` of ``q_ptr`` (e4m3 bits,
    ``cols`` a row, contiguous) and ``scale_ptr[row]``: ``amax`` at least ``tiny`` (NaN if the row has one),
    ``q = e4m3(clamp(x * (448 / amax)))``, ``scale = amax / 448``. Also the one-pass fusion kernels' last step
    (the activation kernels below, ``benchmarks/onepass_kernels.py``); ``NATIVE`` as :func:`e4m3_code`."""
    amax = tl.max(tl.abs(x), axis=0)
    has_nan = tl.max(tl.where(x != x, 1, 0), axis=0) > 0
    amax = tl.where(has_nan, float("nan"), tl.where(amax < tiny, tiny, amax))
    inv = tl.div_rn(448.0, amax)
    y = x * inv
    scaled = tl.where(y > 448.0, 448.0, tl.where(y < -448.0, -448.0, y))  # NaN stays NaN
    tl.store(q_ptr + row * cols + offs, e4m3_code(scaled, NATIVE), mask=mask)
    tl.store(scale_ptr + row, tl.div_rn(amax, 448.0))


@triton.jit
def quantize_rows_kernel(x_ptr, q_ptr, scale_ptr, cols, x_row_stride, tiny, BLOCK: tl.constexpr):
    """``q[r] = e4m3(clamp(x[r] * (448 / amax_r)))`` (as uint8 bits) and ``scale[r] = amax_r / 448`` for row
    ``r`` = the program id.

    Args:
        x_ptr: ``[R, cols]`` floating point, unit stride along a row, ``x_row_stride`` between rows.
        q_ptr: ``[R, cols]`` uint8, contiguous (the e4m3 bits).
        scale_ptr: ``[R]`` float32.
        tiny: the smallest ``amax`` used (an all-zero row gets zeros, not NaN).
        BLOCK: a power of two >= ``cols``.
    """
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < cols
    x = tl.load(x_ptr + row * x_row_stride + offs, mask=mask, other=0.0).to(tl.float32)
    store_quantized_row(x, offs, mask, q_ptr, scale_ptr, row, cols, tiny, False)


@triton.jit
def bf16_value(v):
    """float32 -> its nearest bf16 value (ties to even), kept in float32."""
    return widen_bf16(round_bf16(v))


@triton.jit
def _bf16_in(v, NATIVE: tl.constexpr):
    """bf16 loaded values as float32 (exact either way; ``NATIVE``: the GPU's conversion)."""
    if NATIVE:
        return v.to(tl.float32)
    else:
        return widen_bf16(v)


@triton.jit
def _bf16_out(v, NATIVE: tl.constexpr):
    """:func:`bf16_value`, or with ``NATIVE`` the GPU's conversion to bf16 and back (to nearest, ties to even)."""
    if NATIVE:
        return v.to(tl.bfloat16).to(tl.float32)
    else:
        return bf16_value(v)


@triton.jit
def gelu_rows_kernel(h_ptr, q_ptr, scale_ptr, cols, h_stride, tiny, BLOCK: tl.constexpr, NATIVE: tl.constexpr):
    """Row ``r`` (the program id) of ``quantize(bf16(gelu(h)))``: ``h_ptr`` bf16 ``[R, cols]`` (unit stride
    along a row), ``q_ptr`` uint8 ``[R, cols]`` contiguous, ``scale_ptr`` float32 ``[R]``; ``BLOCK >= cols``;
    ``NATIVE``: the GPU's own conversions instead of integer arithmetic (:func:`e4m3_code`)."""
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < cols
    h = _bf16_in(tl.load(h_ptr + row * h_stride + offs, mask=mask, other=0.0), NATIVE)
    y = 0.5 * h * (1.0 + tl.math.erf(h * 0.7071067811865476))
    store_quantized_row(_bf16_out(y, NATIVE), offs, mask, q_ptr, scale_ptr, row, cols, tiny, NATIVE)


@triton.jit
def gelu_backward_rows_kernel(g_ptr, h_ptr, q_ptr, scale_ptr, cols, g_stride, h_stride, tiny,
                              BLOCK: tl.constexpr, NATIVE: tl.constexpr):
    """Row ``r`` of ``quantize(bf16(gelu_backward(g, h)))``; ``g_ptr`` and ``h_ptr`` bf16, else as
    :func:`gelu_rows_kernel`."""
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < cols
    g = _bf16_in(tl.load(g_ptr + row * g_stride + offs, mask=mask, other=0.0), NATIVE)
    h = _bf16_in(tl.load(h_ptr + row * h_stride + offs, mask=mask, other=0.0), NATIVE)
    cdf = 0.5 * (1.0 + tl.math.erf(h * 0.7071067811865476))
    pdf = tl.exp(-0.5 * h * h) * 0.3989422804014327
    store_quantized_row(_bf16_out(g * (cdf + h * pdf), NATIVE), offs, mask, q_ptr, scale_ptr, row, cols, tiny,
                        NATIVE)


@triton.jit
def roundings_kernel(v_ptr, bf16_ptr, e4m3_ptr, n, BLOCK: tl.constexpr, NATIVE: tl.constexpr):
    """The kernels' two roundings of ``n`` float32 values, for tests: ``bf16_ptr`` float32, the bf16 value;
    ``e4m3_ptr`` uint8, the e4m3 code of the value clamped to [-448, 448] (NaN kept); ``NATIVE`` as
    :func:`e4m3_code`."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.load(v_ptr + offs, mask=mask, other=0.0)
    tl.store(bf16_ptr + offs, _bf16_out(v, NATIVE), mask=mask)
    clamped = tl.where(v > 448.0, 448.0, tl.where(v < -448.0, -448.0, v))
    tl.store(e4m3_ptr + offs, e4m3_code(clamped, NATIVE), mask=mask)
