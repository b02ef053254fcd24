"""Triton kernels of :mod:`.fp8_rows`: rows to fp8 e4m3 with one scale per row, and the conversions that
:mod:`.fp8_activation_kernels` shares (needs Triton).

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
in the reference (the row maximum propagates NaN, where Triton's plain one drops it).
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
    """float32 -> the e4m3fn bits (uint8) of ``clamp(v, -448, 448)``, to nearest, ties to even: :func:`round_e4m3`
    after the clamp, or with ``NATIVE`` the GPU's own saturating conversion (one instruction; a NaN's code is
    ``0x7F`` whatever its sign, where the integer arithmetic keeps the sign)."""
    if NATIVE:
        return v.to(tl.float8e4nv).to(tl.uint8, bitcast=True)
    else:
        return round_e4m3(tl.where(v > 448.0, 448.0, tl.where(v < -448.0, -448.0, v)))  # NaN stays NaN


@triton.jit
def max_nan(a, b):
    """The larger of ``a`` and ``b``, NaN if either is (one instruction on the GPU)."""
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def row_amax(x):
    """``max |x|`` over a 1-D block, NaN if it holds one."""
    return tl.reduce(tl.abs(x), 0, max_nan)


@triton.jit
def store_quantized_row(x, offs, mask, q_ptr, scale_ptr, row, cols, tiny):
    """Quantize the float32 row ``x`` (zeros where ``mask`` is off) into row ``row`` of ``q_ptr`` (e4m3 bits,
    ``cols`` a row, contiguous) and ``scale_ptr[row]``: ``amax`` at least ``tiny`` (NaN if the row has one),
    ``q = e4m3(clamp(x * (448 / amax)))``, ``scale = amax / 448``, the e4m3 rounding in integer arithmetic
    (:func:`e4m3_code`). The activation kernels' multi-piece form is
    :func:`~.fp8_activation_kernels.store_quantized_pieces`."""
    amax = row_amax(x)
    amax = tl.where(amax < tiny, tiny, amax)  # NaN stays NaN
    inv = tl.div_rn(448.0, amax)
    tl.store(q_ptr + row * cols + offs, e4m3_code(x * inv, False), mask=mask)
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
    store_quantized_row(x, offs, mask, q_ptr, scale_ptr, row, cols, tiny)


@triton.jit
def bf16_value(v):
    """float32 -> its nearest bf16 value (ties to even), kept in float32."""
    return widen_bf16(round_bf16(v))


@triton.jit
def bf16_in(v, NATIVE: tl.constexpr):
    """bf16 loaded values as float32 (exact either way; ``NATIVE``: the GPU's conversion)."""
    if NATIVE:
        return v.to(tl.float32)
    else:
        return widen_bf16(v)


@triton.jit
def bf16_out(v, NATIVE: tl.constexpr):
    """:func:`bf16_value`, or with ``NATIVE`` the GPU's conversion to bf16 and back (to nearest, ties to even)."""
    if NATIVE:
        return v.to(tl.bfloat16).to(tl.float32)
    else:
        return bf16_value(v)


@triton.jit
def roundings_kernel(v_ptr, bf16_ptr, e4m3_ptr, n, BLOCK: tl.constexpr, NATIVE: tl.constexpr):
    """The kernels' two roundings of ``n`` float32 values, for tests: ``bf16_ptr`` float32, the bf16 value;
    ``e4m3_ptr`` uint8, :func:`e4m3_code` of the value; ``NATIVE`` as there."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.load(v_ptr + offs, mask=mask, other=0.0)
    tl.store(bf16_ptr + offs, bf16_out(v, NATIVE), mask=mask)
    tl.store(e4m3_ptr + offs, e4m3_code(v, NATIVE), mask=mask)
