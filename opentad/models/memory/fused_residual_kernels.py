"""Triton kernels of :mod:`.fused_residual` (imported on first use; needs Triton).

Each program handles ``BLOCK`` consecutive elements of contiguous tensors.
The bf16 <-> float32 conversions are written in integer arithmetic (widening
exactly; narrowing to nearest, ties to even, as PyTorch's cast), so that
Triton's CPU interpreter, whose plain casts truncate and mangle subnormals,
computes what the GPU computes.
"""
import triton
import triton.language as tl


@triton.jit
def round_bf16(y):
    """float32 -> bf16, to nearest, ties to even; NaN through the plain cast."""
    bits = y.to(tl.uint32, bitcast=True)
    bits = bits + 0x7FFF + ((bits >> 16) & 1)
    rounded = (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    return tl.where(y != y, y.to(tl.bfloat16), rounded)


@triton.jit
def widen_bf16(v):
    """bf16 -> float32, exactly, in integer arithmetic (the interpreter's cast mangles bf16 subnormals)."""
    return (v.to(tl.uint16, bitcast=True).to(tl.uint32) << 16).to(tl.float32, bitcast=True)


@triton.jit
def forward_kernel(up_ptr, gamma_ptr, x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """``out = bf16(fl32(fl32(up * gamma) + x))`` (launch with ``enable_fp_fusion=False``: no FMA)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    gamma = tl.load(gamma_ptr)
    up = widen_bf16(tl.load(up_ptr + offs, mask=mask, other=0.0))
    x = widen_bf16(tl.load(x_ptr + offs, mask=mask, other=0.0))
    tl.store(out_ptr + offs, round_bf16(up * gamma + x), mask=mask)


@triton.jit
def backward_kernel(grad_ptr, up_ptr, gamma_ptr, grad_up_ptr, prod_ptr, n,
                    WANT_UP: tl.constexpr, WANT_GAMMA: tl.constexpr, BLOCK: tl.constexpr):
    """``grad_up = bf16(fl32(grad * gamma))`` and ``prod = grad * up`` in float32 (exact), as asked."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    grad = widen_bf16(tl.load(grad_ptr + offs, mask=mask, other=0.0))
    if WANT_UP:
        tl.store(grad_up_ptr + offs, round_bf16(grad * tl.load(gamma_ptr)), mask=mask)
    if WANT_GAMMA:
        up = widen_bf16(tl.load(up_ptr + offs, mask=mask, other=0.0))
        tl.store(prod_ptr + offs, grad * up, mask=mask)
