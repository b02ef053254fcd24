"""The fp8 row-quantization kernel against the PyTorch reference; run by test_fp8_matmul.py in a fresh process.

Triton's CPU interpreter is chosen when Triton is first imported (``TRITON_INTERPRET=1`` for ``--device cpu``).
Scales and e4m3 values must equal the reference's bitwise on both (the same correctly rounded float32
divisions of the same maximum; the kernel rounds to e4m3 in integer arithmetic, as PyTorch's cast). The
reference itself is checked against e4m3's value grid, independently of PyTorch's cast: each value one of the
two e4m3 neighbours of the scaled value, the nearer one, and the even one on a tie; the rows include every
e4m3 value, every midpoint between two of them and the float32 values next to each midpoint.
"""
import argparse

import torch

from opentad.models.memory import fp8_rows as R8
from tests.models.memory.kernel_cases import CHECKS, check


def e4m3_neighbours(v: torch.Tensor):
    """The e4m3 values just below and just above each float32 ``v`` (|v| <= 448), as float32."""
    grid = torch.arange(256, dtype=torch.uint8).view(R8.FP8).float()
    grid = torch.unique(grid[torch.isfinite(grid)])  # sorted, one zero
    idx = torch.searchsorted(grid, v.contiguous())
    above = grid[idx.clamp(max=len(grid) - 1)]
    below = grid[(idx - (grid[idx.clamp(max=len(grid) - 1)] != v).long()).clamp(min=0)]
    return below, above


def sweep_rows() -> torch.Tensor:
    """Rows whose maximum is 448 (so the scaled values are the values): the e4m3 grid, its midpoints and their
    float32 neighbours, both signs."""
    grid = torch.arange(256, dtype=torch.uint8).view(R8.FP8).float()
    grid = torch.unique(grid[torch.isfinite(grid) & (grid >= 0)])
    mids = (grid[1:] + grid[:-1]) / 2  # exact in float32
    values = torch.cat([grid, mids, torch.nextafter(mids, torch.zeros_like(mids)),
                        torch.nextafter(mids, torch.full_like(mids, 1e9))])
    values = torch.cat([values, -values])
    width = 64
    values = torch.cat([values, torch.zeros((-len(values)) % (width - 1))]).reshape(-1, width - 1)
    return torch.cat([torch.full((values.shape[0], 1), 448.0), values], dim=1)


#: a row maximum whose ``448 / amax`` is inexact and differs from ``1 / (amax / 448)`` in float32
AMAX = 1.0001000165939331


def midpoint_rows() -> torch.Tensor:
    """Rows whose maximum is :data:`AMAX`: values whose scaled value falls on, or within two float32 steps of,
    every e4m3 midpoint, so that an ``inv`` off by one step rounds some of them the other way."""
    grid = torch.arange(256, dtype=torch.uint8).view(R8.FP8).float()
    grid = torch.unique(grid[torch.isfinite(grid) & (grid >= 0)])
    mids = ((grid[1:] + grid[:-1]) / 2).double()
    amax = torch.tensor(AMAX, dtype=torch.float32)
    assert torch.full_like(amax, 448.0) / amax != 1.0 / (amax / 448.0)
    base = (mids * amax.double() / 448).float()
    values = [base]
    for _ in range(2):
        values += [torch.nextafter(values[-2 if len(values) > 1 else 0], torch.zeros_like(base)),
                   torch.nextafter(values[-1], torch.full_like(base, 1e9))]
    values = torch.cat(values)
    values = torch.cat([values, -values])
    width = 64
    values = torch.cat([values, torch.zeros((-len(values)) % (width - 1))]).reshape(-1, width - 1)
    return torch.cat([torch.full((values.shape[0], 1), AMAX), values], dim=1)


def same_scales(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equal, or both NaN."""
    return bool(((a.view(torch.int32) == b.view(torch.int32)) | (a.isnan() & b.isnan())).all())


def check_reference(x: torch.Tensor, q: torch.Tensor, name: str) -> None:
    """The reference's e4m3 values against the value grid (independent of PyTorch's cast)."""
    amax = x.float().abs().amax(dim=1, keepdim=True).clamp(min=R8.TINY)
    scaled = (x.float() * (torch.full_like(amax, R8.FP8_MAX) / amax)).clamp(-R8.FP8_MAX, R8.FP8_MAX).cpu()
    below, above = e4m3_neighbours(scaled)
    got = q.float().cpu()
    check(f"{name}: the reference gives an e4m3 neighbour", bool(((got == below) | (got == above)).all()))
    d_below, d_above = (scaled - below).abs(), (above - scaled).abs()
    nearer = torch.where(d_below < d_above, below, above)
    # the even neighbour: the last bit of its e4m3 code (an exact conversion: ``below`` is on the grid)
    even = torch.where((below.to(R8.FP8).view(torch.uint8) & 1) == 0, below, above)
    want = torch.where(d_below == d_above, even, nearer)
    check(f"{name}: the reference rounds to nearest, ties to even", torch.equal(got, want))


def run(device: str) -> None:
    gen = torch.Generator().manual_seed(0)
    rows = [torch.randn(37, cols, generator=gen) * torch.logspace(-3, 3, 37)[:, None] for cols in (16, 100, 1408)]
    special = torch.zeros(4, 48)
    special[1] = torch.linspace(-5, 5, 48)
    special[2, :4] = torch.tensor([448.0, 17.0, 19.0, -17.0])  # ties to even: 16, 20, -16
    special[3, :3] = torch.tensor([1e30, 1.0, -3e29])
    rows.append(special)
    nan_rows = torch.ones(3, 32)
    nan_rows[0, 5] = float("nan")  # the row's scale and every value NaN, as the reference
    nan_rows[1, 7] = float("inf")  # the scale infinite, the infinite value NaN, the others zero
    nan_rows[2, 9] = -float("inf")
    for x in rows:
        x = x.to(torch.bfloat16).to(device)
        q, scale = R8.quantize_rows(x)
        q_ref, scale_ref = R8.quantize_rows_reference(x)
        name = f"{tuple(x.shape)}"
        check(f"{name}: shapes and dtypes", q.shape == x.shape and q.dtype == R8.FP8
              and scale.shape == (x.shape[0], 1) and scale.dtype == torch.float32 and q.is_contiguous())
        check(f"{name}: the scales, bitwise", torch.equal(scale, scale_ref))
        check(f"{name}: the e4m3 values, bitwise", torch.equal(q.view(torch.uint8), q_ref.view(torch.uint8)))
        check_reference(x, q_ref, name)
    q, scale = R8.quantize_rows(nan_rows.to(torch.bfloat16).to(device))
    q_ref, scale_ref = R8.quantize_rows_reference(nan_rows.to(torch.bfloat16).to(device))
    check("NaN and infinite values: the scales as the reference's (NaN, inf, inf)", same_scales(scale, scale_ref)
          and bool(scale[0].isnan()) and bool(scale[1:].isinf().all()))
    nan = q_ref.float().isnan()  # NaN's sign is the arithmetic's own: NaN for NaN, bitwise elsewhere
    check("NaN and infinite values: NaN where the reference has NaN, its e4m3 bits elsewhere",
          torch.equal(q.float().isnan(), nan) and bool(nan[0].all()) and int(nan[1:].sum()) == 2
          and torch.equal(q.view(torch.uint8)[~nan], q_ref.view(torch.uint8)[~nan]))
    tie = R8.quantize_rows(rows[-1].to(torch.bfloat16).to(device))[0][2, :4].float().cpu()
    check("hand-worked ties to even: 17 -> 16, 19 -> 20", tie.tolist() == [448.0, 16.0, 20.0, -16.0])
    # float32 inputs (the reference takes any float): the grid, midpoints and their neighbours exactly
    sweep = sweep_rows().to(device)
    q_ref, _ = R8.quantize_rows_reference(sweep)
    check_reference(sweep, q_ref, "e4m3 grid sweep")
    check("e4m3 grid sweep: the kernel's rounding, bitwise", torch.equal(
        _kernel_round(sweep, device).view(torch.uint8).cpu(), q_ref.view(torch.uint8).cpu()))
    near = midpoint_rows().to(device)
    q_ref, _ = R8.quantize_rows_reference(near)
    check_reference(near, q_ref, "midpoints at an inexact scale")
    check("midpoints at an inexact scale: the kernel, bitwise", torch.equal(
        _kernel_round(near, device).view(torch.uint8).cpu(), q_ref.view(torch.uint8).cpu()))
    strided = torch.randn(8, 64, generator=gen).to(torch.bfloat16).to(device)[:, :32]
    q, scale = R8.quantize_rows(strided)
    q_ref, scale_ref = R8.quantize_rows_reference(strided)
    check("a row stride other than the width, bitwise", torch.equal(scale, scale_ref) and q.is_contiguous()
          and torch.equal(q.view(torch.uint8), q_ref.view(torch.uint8)))
    empty = R8.quantize_rows(torch.zeros(0, 32, dtype=torch.bfloat16, device=device))
    check("no rows", empty[0].shape == (0, 32) and empty[1].shape == (0, 1))


def _kernel_round(x: torch.Tensor, device: str) -> torch.Tensor:
    """The kernel on float32 rows (it loads any float and computes in float32)."""
    from opentad.models.memory.fp8_kernels import quantize_rows_kernel as kernel

    q = torch.empty(x.shape, dtype=R8.FP8, device=device)
    scale = torch.empty((x.shape[0], 1), dtype=torch.float32, device=device)
    kernel[(x.shape[0],)](x, q.view(torch.uint8), scale, x.shape[1], x.stride(0), R8.TINY, BLOCK=64)
    return q


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    run(parser.parse_args().device)
    print(f"all {CHECKS[0]} checks passed", flush=True)
