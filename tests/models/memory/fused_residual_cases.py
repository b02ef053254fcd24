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

import torch

from opentad.models.memory.fused_residual import fused_scaled_residual, fusable
from tests.models.memory.wrappers import wrapper_config
from tests.models.memory.kernel_cases import CHECKS, check


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


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equal, except that any NaN equals any NaN (payloads differ between casts and devices)."""
    if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(torch.isnan(a), torch.isnan(b)):
        return False
    ints = torch.int16 if a.dtype == BF16 else torch.int32
    keep = ~torch.isnan(a)
    return torch.equal(a.contiguous().view(ints)[keep], b.contiguous().view(ints)[keep])


def eager(up: torch.Tensor, gamma: torch.Tensor, x: torch.Tensor, grad: torch.Tensor):
    """The eager expression, cast to bf16 as the policy's stream does: output and the three gradients."""
    up, gamma, x = (t.detach().clone().requires_grad_(True) for t in (up, gamma, x))
    out = (up * gamma + x).to(BF16)
    out.backward(grad)
    return out.detach(), up.grad, gamma.grad, x.grad


def fused(up: torch.Tensor, gamma: torch.Tensor, x: torch.Tensor, grad: torch.Tensor):
    """:func:`fused_scaled_residual`: output and the three gradients."""
    up, gamma, x = (t.detach().clone().requires_grad_(True) for t in (up, gamma, x))
    out = fused_scaled_residual(up, gamma, x)
    out.backward(grad)
    return out.detach(), up.grad, gamma.grad, x.grad


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

    strided_gradient_case(device)
    double_backward_case(device)
    bit_pattern_case(device)
    guard_case(device)
    eager_fallback_cases(device)
    adapter_case(device)
    wrapper_case(device)


def strided_gradient_case(device: str) -> None:
    """An incoming gradient laid out channels-first (as the wrapper's pooling sends the last block's): eager's
    gradients keep that layout and sum gamma's products in its order; the fused backward must too."""
    up, gamma, x, _ = random_case(device, 85)
    grad = torch.randn(2, 24, 85).to(device=device, dtype=BF16).transpose(1, 2)  # [2, 85, 24], not contiguous
    for name, got, want in zip(("output", "grad up", "grad gamma", "grad x"), fused(up, gamma, x, grad),
                               eager(up, gamma, x, grad)):
        check(f"strided incoming gradient: {name}", same(got, want) and got.stride() == want.stride())


def double_backward_case(device: str) -> None:
    """A second derivative through the fused backward is an error, not a silent zero (the kernel's gradients
    carry no graph: second-order uses need ``fused_residual=False``)."""
    up, gamma, x, grad = random_case(device, 1)
    up, gamma = up.requires_grad_(True), gamma.requires_grad_(True)
    (grad_up,) = torch.autograd.grad(fused_scaled_residual(up, gamma, x), up, grad, create_graph=True)
    try:
        torch.autograd.grad(grad_up.float().sum(), gamma)
    except RuntimeError:
        check("double backward is refused", True)
    else:
        check("double backward is refused", False)


def bit_pattern_case(device: str) -> None:
    """Random bf16 bit patterns (subnormals, infinities and NaNs among them) against the eager expression."""
    gen = torch.Generator().manual_seed(7)
    up, x, grad = (torch.randint(-2**15, 2**15, (4096,), generator=gen, dtype=torch.int16).view(BF16).to(device)
                   for _ in range(3))
    for gamma_value in (0.8273, -3.0e-38, 2.0**100):
        gamma = torch.tensor([gamma_value], device=device)
        got, want = fused(up, gamma, x, grad), eager(up, gamma, x, grad)
        for name, a, b in zip(("output", "grad up", "grad x"), (got[0], got[1], got[3]), (want[0], want[1], want[3])):
            check(f"bit patterns, gamma {gamma_value!r}: {name}", same(a, b))
        check(f"bit patterns, gamma {gamma_value!r}: grad gamma", same(got[2], want[2]))


def guard_case(device: str) -> None:
    """The kernel writes its n elements and nothing past them (masked tail of the last program)."""
    from opentad.models.memory.fused_residual import _BLOCK, _kernels

    forward_kernel = _kernels()[0]
    n = _BLOCK + 5
    up, x = (torch.randn(n + 64).to(device=device, dtype=BF16) for _ in range(2))
    out = torch.full((n + 64,), 7.0, device=device, dtype=BF16)
    forward_kernel[((n + _BLOCK - 1) // _BLOCK,)](up, torch.tensor([0.5], device=device), x, out, n, BLOCK=_BLOCK)
    check("kernel: the guard elements past n are untouched", bool((out[n:] == 7.0).all()))
    check("kernel: the n elements are written", same(out[:n], (up[:n] * torch.tensor([0.5], device=device)
                                                               + x[:n]).to(BF16)))


def eager_fallback_cases(device: str) -> None:
    """What the kernel does not take runs the eager expression (same dtype, same values)."""
    gen = torch.Generator().manual_seed(3)
    up = torch.randn(3, 5, generator=gen).to(device=device, dtype=BF16)
    x = torch.randn(3, 5, generator=gen).to(device=device, dtype=BF16)
    one = torch.tensor([0.75], device=device)
    cases = {
        "a strided x": (up, one, x.t().contiguous().t()),
        "a strided up": (up.t().contiguous().t(), one, x),
        "gamma of shape [C]": (up, torch.full((5,), 0.75, device=device), x),
        "a 0-dim gamma (no promotion to float32)": (up, torch.tensor(0.75, device=device), x),
        "broadcast shapes": (up[:1], one, x),
        "float16": (up.half(), one, x.half()),
    }
    for name, (a, g, b) in cases.items():
        out = fused_scaled_residual(a, g, b)
        want = a * g + b
        check(f"{name} runs the eager expression", not fusable(a, g, b) and same(out, want))


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




def wrapper_case(device: str) -> None:
    """A whole backbone wrapper as the AdaTAD configs build it (its pooling sends the last block a strided
    gradient), fused against eager: the same features and every trainable gradient, bitwise, under the
    memory options that run adapters differently (plain, checkpointed with a chunked backward, temporal
    checkpointing) and for the QLoRA ViT."""
    from opentad.models.builder import build_backbone

    variants = {
        "plain": {},
        "checkpoint, chunks 2": dict(with_cp=True, backward_chunks=2),
        "temporal checkpointing": dict(temporal_checkpointing=True, temporal_checkpointing_chunk_num=2,
                                       temporal_checkpointing_chunk_dim=0),
        "QLoRA ViT": dict(qlora=True),
    }
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 1, 3, 16, 32, 32), generator=gen, dtype=torch.uint8).to(device)
    weights = torch.randn(2, 32, 8, generator=gen).to(device)  # features [B, C, T]: 16 frames, tubelets of 2
    for name, options in variants.items():
        results = []
        for fused_on in (False, True):
            cfg = wrapper_config(type="VisionTransformerAdapter", depth=3, adapter_index=[0, 1, 2])
            custom = dict(options)
            cfg["backbone"]["with_cp"] = custom.pop("with_cp", False)
            if custom.pop("qlora", False):
                cfg["backbone"].update(type="VisionTransformerQLoRA", lora_r=4, lora_alpha=8, lora_dropout=0.1,
                                       quantize_bits=4)
            cfg["custom"].update(custom, fused_residual=fused_on)
            torch.manual_seed(0)
            model = build_backbone(cfg).to(device).train()
            with torch.no_grad():  # zero-initialised up projections and LoRA: give every gradient path a value
                for param in model.parameters():
                    if param.requires_grad:
                        param.add_(torch.randn_like(param) * 0.2)
            torch.manual_seed(1)  # LoRA's dropout masks
            with torch.autocast(device, dtype=BF16):
                feats = model(frames)
            (feats.float() * weights).sum().backward()
            adapters = [m for m in model.modules() if getattr(m, "residual", None) is True
                        and hasattr(type(m), "residual_op")]
            installed = all(m.residual_op is fused_scaled_residual for m in adapters) == fused_on
            results.append((feats.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None},
                            installed and len(adapters) == 3))
        (eager_feats, eager_grads, eager_ok), (fused_feats, fused_grads, fused_ok) = results
        check(f"wrapper, {name}: the residual installed as asked", eager_ok and fused_ok)
        check(f"wrapper, {name}: features", same(fused_feats, eager_feats))
        check(f"wrapper, {name}: the same {len(eager_grads)} gradients", eager_grads.keys() == fused_grads.keys()
              and len(eager_grads) > 0 and all(same(fused_grads[k], eager_grads[k]) for k in eager_grads))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    device = parser.parse_args().device
    if device == "cuda":  # two runs of the adapter compared bitwise: deterministic kernels around the residual
        torch.use_deterministic_algorithms(True)
    run(device)
    print(f"all {CHECKS[0]} checks passed", flush=True)
