"""Checks of the fused scaled residual's Triton kernels, run by test_fused_residual.py in a fresh process.

Run with ``TRITON_INTERPRET=1`` (Triton's CPU interpreter, CPU tensors) or without it on a CUDA machine
(``--device cuda``). Each check compares the kernel with an independent reference written here:

* float32 arithmetic from float64: a product of a bf16 and a float32 value is exact in float64 (8 + 24
  significant bits), and so is rounding a float64 sum of two float32 values to float32 as float32 addition
  would (53 >= 2 * 24 + 2: double rounding is innocuous for one addition);
* float32 -> bf16 to nearest, ties to even, by choosing between the two neighbouring bf16 values in float64
  (values past the largest bf16 round to infinity as IEEE's unbounded-exponent rule says);
* ``gamma``'s gradient: the eager expression's own autograd (the same ``sum_to_size`` reduction over the same
  exact products), and the float64 sum within the float32 summation bound ``n * eps32 * sum |terms|``.

Prints ``ok <check>`` per check and exits non-zero on the first mismatch.
"""
import argparse
import sys

import torch

from opentad.models.memory.fused_residual import fused_scaled_residual, fusable

BF16 = torch.bfloat16


def bf16_nearest_even(y32: torch.Tensor) -> torch.Tensor:
    """float32 values -> the nearest bf16 (ties to the even significand), by comparison in float64."""
    bits = y32.contiguous().view(torch.int32)
    lo = (bits & ~0xFFFF).view(torch.float32).double()  # toward zero
    mag = lo.abs()
    ulp = torch.where(mag > 0, torch.ldexp(torch.ones_like(mag), torch.frexp(mag).exponent - 8),
                      torch.zeros_like(mag)).clamp_min(2.0**-133)  # bf16's subnormal spacing below 2^-126
    hi = lo + torch.sign(y32.double()) * ulp  # away from zero (may be 2^128: infinity once rounded)
    y = y32.double()
    d_lo, d_hi = (y - lo).abs(), (hi - y).abs()
    lo_even = ((bits >> 16) & 1) == 0
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & ~lo_even)
    out = torch.where(pick_hi, hi, lo)
    out = torch.where(out.abs() >= 2.0**128, torch.sign(out) * torch.inf, out)
    out = torch.where(torch.isnan(y) | torch.isinf(y), y, out)
    return out.to(BF16)  # exact: every value is a bf16 (or inf / nan)


def fl32(v64: torch.Tensor) -> torch.Tensor:
    return v64.to(torch.float32)


def check(name: str, ok: bool) -> None:
    if not ok:
        print(f"FAILED {name}", flush=True)
        sys.exit(1)
    print(f"ok {name}", flush=True)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equal, NaN included."""
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.int16) if a.dtype == BF16
                                                                     else a.view(torch.int32),
                                                                     b.view(torch.int16) if b.dtype == BF16
                                                                     else b.view(torch.int32))


def random_case(device: str, rows: int):
    gen = torch.Generator().manual_seed(rows)
    up = (torch.randn(2, rows, 24, generator=gen) * 0.05).to(device=device, dtype=BF16)
    x = (torch.randn(2, rows, 24, generator=gen) * 3).to(device=device, dtype=BF16)
    gamma = torch.tensor([0.8273], device=device)
    grad = torch.randn(2, rows, 24, generator=gen).to(device=device, dtype=BF16)
    return up, gamma, x, grad


def run(device: str) -> None:
    for rows in (1, 85, 700):  # 48, 4080 and 33600 elements: one partial program, several, many
        up, gamma, x, grad = random_case(device, rows)
        check(f"fusable {rows}", fusable(up, gamma, x))
        up_, gamma_, x_ = (t.clone().requires_grad_(True) for t in (up, gamma, x))
        out = fused_scaled_residual(up_, gamma_, x_)
        out.backward(grad)
        product = fl32(up.double() * gamma.double())
        want = bf16_nearest_even(fl32(product.double() + x.double()))
        check(f"forward {rows}", same(out.detach(), want))
        check(f"grad x {rows}", same(x_.grad, grad))
        check(f"grad up {rows}", same(up_.grad, bf16_nearest_even(fl32(grad.double() * gamma.double()))))
        eager_up, eager_gamma, eager_x = (t.clone().requires_grad_(True) for t in (up, gamma, x))
        (eager_up * eager_gamma + eager_x).to(BF16).backward(grad)
        check(f"grad gamma as eager {rows}", same(gamma_.grad, eager_gamma.grad))
        terms = grad.double() * up.double()
        bound = terms.numel() * torch.finfo(torch.float32).eps * terms.abs().sum()
        check(f"grad gamma bound {rows}", abs(gamma_.grad.double().item() - terms.sum().item()) <= bound.item())
        check(f"eager forward {rows}", same((eager_up * eager_gamma + eager_x).detach().to(BF16), want))

    # hand-worked roundings: up = 1, x = 0, so y = gamma exactly
    cases = [  # (gamma, expected bf16 result)
        (1 + 2.0**-8, 1.0),                      # tie between 1 and 1 + 2^-7: the even one, 1
        (1 + 3 * 2.0**-8, 1 + 2.0**-6),          # tie between 1 + 2^-7 (odd) and 1 + 2^-6: 1 + 2^-6
        (1 + 2.0**-8 + 2.0**-20, 1 + 2.0**-7),   # just above the tie: up
        (-(1 + 2.0**-8), -1.0),                  # ties to even for negative values too
        (3.4e38, float("inf")),                  # past halfway between the largest bf16 and 2^128
        (float("nan"), float("nan")),
        (1.0e-39, None),                         # a float32 subnormal: kept, not flushed, as eager PyTorch
        (-(2.0**-133) * 1.5, -(2.0**-132)),      # a tie between bf16 subnormals 2^-133 (odd) and 2^-132
    ]
    for gamma_value, expected in cases:
        up = torch.ones(4, device=device, dtype=BF16)
        x = torch.zeros(4, device=device, dtype=BF16)
        out = fused_scaled_residual(up, torch.tensor([gamma_value], device=device), x)
        if expected is None:  # the reference's own rounding of the float32 value
            want = bf16_nearest_even(torch.full((4,), gamma_value, device=device))
            check("subnormal reference is not zero", bool((want != 0).all()))
        else:
            want = torch.full((4,), expected, device=device, dtype=BF16)
        check(f"rounding of {gamma_value!r}", same(out, want) and same(bf16_nearest_even(out.float()), out))

    adapter_case(device)
    up = torch.ones(3, 5, device=device, dtype=BF16)
    check("a strided x runs the eager expression",
          not fusable(up, torch.ones(1, device=device), torch.ones(5, 3, device=device, dtype=BF16).t()))
    check("float16 runs the eager expression",
          not fusable(up.half(), torch.ones(1, device=device), up.half()))


def adapter_case(device: str) -> None:
    """A TIA under autocast: the fused residual's output and gradients are the eager ones cast to bf16."""
    from opentad.models.bricks.vit_adapter import TemporalAdapter
    from opentad.models.memory.fused_residual import set_fused_residuals

    torch.manual_seed(0)
    adapter = TemporalAdapter(embed_dims=16, mlp_ratio=0.25, temporal_size=4).to(device)
    with torch.no_grad():
        adapter.up_proj.weight.normal_(0, 0.2)
        adapter.gamma.fill_(0.61)
    x = torch.randn(2, 8, 16, device=device).to(BF16)  # 2 clips of 2 steps on a 2x2 grid: one video of 4
    grad = torch.randn(2, 8, 16, device=device).to(BF16)
    results, raw_dtypes = [], []
    for fused in (False, True):
        set_fused_residuals([adapter], fused)
        adapter.zero_grad(set_to_none=True)
        x_ = x.clone().requires_grad_(True)
        with torch.autocast(device, dtype=BF16):
            out = adapter(x_, (2, 2))
        raw_dtypes.append(out.dtype)  # eager: float32 (promoted by gamma); fused: the kernel's bf16
        out = out.to(BF16)  # the memory policy's stream
        out.backward(grad)
        results.append([out.detach(), x_.grad, adapter.gamma.grad, adapter.up_proj.weight.grad,
                        adapter.down_proj.weight.grad])
    check("adapter: the fused kernel ran", adapter.residual_op is fused_scaled_residual
          and raw_dtypes == [torch.float32, BF16])
    for name, eager, fused in zip(("output", "grad x", "grad gamma", "grad up_proj", "grad down_proj"), *results):
        check(f"adapter {name}", same(fused, eager))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    run(parser.parse_args().device)
