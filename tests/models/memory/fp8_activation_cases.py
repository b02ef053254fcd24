"""The fused activation ops of ``opentad/models/memory/fp8_activations.py`` against the eager ops; run by
test_fp8_activations.py in a fresh process (``--device cpu``: Triton's interpreter; ``cuda``: the GPU).

Error model: the kernels compute the activation in float32 with the eager op's formula but their own ``erf``,
``exp`` and products, then round to bf16. Where the formula cancels (GELU's derivative of a negative input:
``cdf + h pdf`` near 0) two float32 evaluations differ by a few units of ``2^-24 max|h|`` in absolute terms,
elsewhere by a few units in the last place, so a bf16 value can land one bf16 step (at most 2^-7 of it) from
eager's; a row's scale moves by at most that, a scaled value by about 2^-6 relative, which can round to the
neighbouring e4m3 value (2^-3 of the value apart at most; 2^-9 among subnormals) and no further. Against the
activation in float64 each stored value ``q s`` is within ``(2^-4 + 2^-6) |y| + 2^-10 s + 2^-20 max|input|``
(e4m3's and bf16's rounding, e4m3's subnormal half step, float32's evaluation). Flips are rare: in rows whose
scale is eager's, at most 0.1% of GELU's values (plus one: a straddle can happen in any case, however small;
the GPU's ``erf`` flipped one of 128) may differ from eager's bits, at most 5% of ``gelu_backward``'s (about
2% flip where the CPU's vectorised ``exp`` and ``erf`` and Triton's differ under cancellation); a straddle at a
row's maximum moves that row's scale by one bf16 step and may flip many of its values, so such rows are
counted apart (as many rows as values: 0.1% or 5% of them, plus one). The bf16 rounding itself is
checked value by value (ties both ways, overflow, inf, NaN, subnormals).
"""
import argparse

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from opentad.models.memory import fp8_activations as A
from opentad.models.memory.fp8_activation_kernels import erf_f32
from opentad.models.memory.fp8_rows import kernel_device
from tests.models.memory.kernel_cases import CHECKS, check, check_refused


def compare(name: str, got, want, exact: torch.Tensor, inputs: torch.Tensor, need: float = 0.999) -> None:
    """``got`` and ``want``: (q, scale) of the op and of eager; ``exact``: the activation in float64;
    ``need``: the share of values that must be eager's bit for bit."""
    (q, s), (q_ref, s_ref) = got, want
    check(f"{name}: shapes and dtypes", q.shape == q_ref.shape and q.dtype == q_ref.dtype
          and s.shape == s_ref.shape and s.dtype == torch.float32 and q.is_contiguous())
    check(f"{name}: scales within one bf16 step", bool(((s - s_ref).abs() <= 2.0**-7 * s_ref.abs()).all()))
    qf, rf = q.float().cpu(), q_ref.float().cpu()
    check(f"{name}: values within one e4m3 step", bool(((qf - rf).abs() <= 2.0**-3 * rf.abs() + 2.0**-9).all()))
    stored, y = (qf * s.cpu()).double(), exact.cpu()
    bound = (2.0**-4 + 2.0**-6) * y.abs() + 2.0**-10 * s.cpu().double() + 2.0**-20 * inputs.abs().max().item()
    check(f"{name}: within the error model of the float64 activation", bool(((stored - y).abs() <= bound).all()))
    # a straddle at a row's maximum moves the row's scale (by one bf16 step, checked above) and may flip many of
    # its values (each within one e4m3 step, checked above): such rows are counted apart from single flips
    kept = (s == s_ref).flatten().cpu()
    flips = int((q.view(torch.uint8) != q_ref.view(torch.uint8)).cpu()[kept].sum())
    allowed = int((1.0 - need) * int(kept.sum()) * q.shape[1]) + 1  # one straddle is possible in any case
    moved, moved_allowed = int((~kept).sum()), int((1.0 - need) * q.shape[0]) + 1
    check(f"{name}: {flips} values not eager's bit for bit in rows of eager's scale (at most {allowed}), "
          f"{moved} rows of another scale (at most {moved_allowed})", flips <= allowed and moved <= moved_allowed)


def check_bf16_rounding(device: str) -> None:
    """The kernels' rounding to bf16 against PyTorch's cast (to nearest, ties to even), value by value."""
    bits = [0x3F808000, 0x3F818000, 0x3F808001, 0x3F817FFF, 0xBF808000, 0xBF818000, 0x7F7F7FFF, 0x7F7F8000,
            0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x00008000, 0x00018000, 0x00000001, 0x80000000, 0]
    v = torch.tensor(bits, dtype=torch.int64).to(torch.int32).view(torch.float32).to(device)
    got = A.kernel_roundings(v)[0].cpu()
    want = v.to(torch.bfloat16).float().cpu()
    same = (got.view(torch.int32) == want.view(torch.int32)) | (got.isnan() & want.isnan())
    check("bf16 rounding: ties to even, overflow to inf, inf, NaN, subnormals, as PyTorch's cast", bool(same.all()))
    check("hand-worked ties: 0x3F808000 -> 0x3F800000, 0x3F818000 -> 0x3F820000",
          got.view(torch.int32)[:2].tolist() == [0x3F800000, 0x3F820000])


def f32_quotient(a: float, b: float) -> float:
    """``a / b`` correctly rounded to float32 (what the kernels' scale is for a row maximum ``a``)."""
    return (torch.tensor(a) / torch.tensor(b)).item()


def hand_worked(device: str) -> None:
    """GELU(0) = 0, GELU(8) = 8 in bf16 (erf(8/sqrt 2) = 1 in float32); gelu'(0) = 1/2, so the row [g, g, ...] at
    h = 0 has every value g/2: all at 448 after scaling."""
    h = torch.tensor([[0.0, 8.0, 0.0, 8.0]], dtype=torch.bfloat16, device=device)
    q, s = A.gelu_fp8_rows(h)
    check("hand-worked GELU row [0, 8, 0, 8] -> [0, 448, 0, 448], scale 8/448",
          q.float().cpu().tolist() == [[0.0, 448.0, 0.0, 448.0]] and s.item() == f32_quotient(8.0, 448.0))
    q, s = A.gelu_backward_fp8_rows(torch.full((1, 4), 3.0, dtype=torch.bfloat16, device=device),
                                    torch.zeros_like(h))
    check("hand-worked gelu_backward at 0: 3 * 1/2 everywhere -> 448, scale 1.5/448",
          q.float().cpu().tolist() == [[448.0] * 4] and s.item() == f32_quotient(1.5, 448.0))


def check_special_rows(make) -> None:
    """Rows holding a NaN (in ``h``, in ``grad``) or only zeros: the kernels give NaN for the whole row and its
    scale where the reference does (the quantizer's rule: a NaN anywhere in a row makes the row NaN), the
    reference's values elsewhere, zeros for the zero row; in one piece (64 values) and in the second and third of
    three (1408 values: the maximum across pieces must carry the NaN). (At infinite inputs the kernels follow the
    formula, GELU(inf) = inf, where PyTorch's vectorised CPU op gives NaN: either way the row is not finite.)"""
    for cols, (in_h, in_g) in [(64, (5, 7)), (1408, (1100, 700))]:
        for name, value in [("NaN", float("nan")), ("-NaN", -float("nan"))]:
            h, g = make(3, cols), make(3, cols, spread=1e-3)
            h[1, in_h] = value
            g[2, in_g] = value
            h[0] = 0.0
            for op, got, want in [("GELU", A.gelu_fp8_rows(h), A.gelu_rows_reference(h)),
                                  ("gelu_backward", A.gelu_backward_fp8_rows(g, h),
                                   A.gelu_backward_rows_reference(g, h))]:
                (q, s), (q_ref, s_ref) = got, want
                qf, rf = q.float().cpu(), q_ref.float().cpu()
                same = (torch.equal(qf.isnan(), rf.isnan()) and torch.equal(qf.nan_to_num(), rf.nan_to_num())
                        and torch.equal(s.isnan().cpu(), s_ref.isnan().cpu())
                        and torch.equal(s.nan_to_num().cpu(), s_ref.nan_to_num().cpu()))
                check(f"{op}: {cols}-value rows with {name} and an all-zero row as the reference", same)


@triton.jit
def erf_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    """``y = erf_f32(x)`` for ``n`` float32 values."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + offs, erf_f32(tl.load(x_ptr + offs, mask=offs < n)), mask=offs < n)


def check_erf(device: str) -> None:
    """``erf_f32`` against ``erf`` in float64, within 2 units in the last place of float32 (CUDA documents
    ``erff``'s error as at most 2; in Triton's interpreter the algorithm with doubly rounded ``fma`` and an exact
    ``exp2``, 1.42 measured): a dense sweep across ``erff``'s branch point 1.00296, [0, 6] (erf is 1 in float32
    past about 3.9), tiny and subnormal inputs, both signs; ``erf(+-0) = +-0``, ``erf(+-inf) = +-1``, NaN."""
    near = 1.00296 * (1 + torch.linspace(-2.0**-8, 2.0**-8, 4097, dtype=torch.float64))
    x = torch.cat([near, torch.linspace(0, 6, 1 << 16, dtype=torch.float64),
                   torch.logspace(-45, 0, 2048, dtype=torch.float64)]).float()
    x = torch.cat([x, -x]).to(device)
    special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan")], device=device)
    x = torch.cat([x, special]).contiguous()
    y = torch.empty_like(x)
    erf_kernel[((x.numel() + 1023) // 1024,)](x, y, x.numel(), BLOCK=1024)
    y, x = y.cpu(), x.cpu()
    finite = x.isfinite()
    exact = torch.erf(x[finite].double())
    ulp = torch.ldexp(torch.ones_like(exact), torch.frexp(exact)[1] - 24).clamp(min=2.0**-149)
    worst = float(((y[finite].double() - exact).abs() / ulp).max())
    check(f"erf_f32 within 2 float32 ulps of erf on {int(finite.sum())} inputs (worst {worst:.2f})", worst <= 2.0)
    tail = y[-5:]
    check("erf_f32: +-0 keep their sign, +-inf give +-1, NaN gives NaN",
          tail[:2].tolist() == [0.0, 0.0] and torch.signbit(tail[:2]).tolist() == [False, True]
          and tail[2:4].tolist() == [1.0, -1.0] and bool(tail[4].isnan()))


def same_codes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """e4m3 bits (uint8) equal, a NaN's (``0x7F`` or ``0xFF``) whatever its sign."""
    nan_a, nan_b = (a & 0x7F) == 0x7F, (b & 0x7F) == 0x7F
    return torch.equal(nan_a, nan_b) and torch.equal(torch.where(nan_a, 0, a), torch.where(nan_b, 0, b))


def check_native_casts(make) -> None:
    """CUDA: the kernels with the GPU's own conversions (``native_casts``, the default there) give the integer
    arithmetic's bits exactly (both round to nearest, ties to even; the GPU's e4m3 conversion saturates where the
    integer arithmetic clamps first), NaN, infinity and e4m3-subnormal rows included (a NaN's sign aside)."""
    for rows, cols in [(37, 100), (3, 6144)]:
        h, g = make(rows, cols), make(rows, cols, spread=1e-3)
        special = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e-30], device=h.device)
        h[0, :4], g[1, :4] = special.to(h.dtype), special.to(g.dtype)
        h[1, -4:], g[0, -4:] = special.to(h.dtype), special.to(g.dtype)  # in the last piece too
        h[2] = h[2] * 1e-6  # values far below the row maximum: e4m3 subnormals after scaling
        h[2, 0] = 1.0
        for name, launch in [("GELU", dict()), ("gelu_backward", dict(grad=g))]:
            (q, s), (qn, sn) = A.launch_gelu_rows(h, native_casts=False, **launch), A.launch_gelu_rows(h, **launch)
            same = same_codes(q.view(torch.uint8), qn.view(torch.uint8)) and torch.equal(s.isnan(), sn.isnan()) \
                and torch.equal(s.nan_to_num(), sn.nan_to_num())
            check(f"native casts: {name} [{rows}, {cols}] bit for bit as the integer arithmetic", same)
    v = rounding_sweep().to(h.device)
    (b, e), (bn, en) = A.kernel_roundings(v), A.kernel_roundings(v, native_casts=True)
    check("native casts: bf16 rounding of every e4m3 value, midpoint and midpoint neighbour as the integer "
          "arithmetic", bool(((b.view(torch.int32) == bn.view(torch.int32)) | (b.isnan() & bn.isnan())).all()))
    check("native casts: e4m3 codes of every e4m3 value, midpoint and midpoint neighbour, and of values past 448, as "
          "the integer arithmetic (a conversion through fp16, rounding twice, would differ at the neighbours)",
          same_codes(e, en))


def rounding_sweep() -> torch.Tensor:
    """float32 values where roundings differ: every finite e4m3 value, the midpoints between neighbours, each
    midpoint's float32 neighbours, the same for bf16 around a few binades, values past e4m3's 448 (which saturate),
    infinity, NaN and both zeros."""
    e4m3 = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(torch.float8_e4m3fn).float()
    e4m3 = e4m3[e4m3.isfinite()].unique()
    mids = (e4m3[1:] + e4m3[:-1]) / 2
    up, down = torch.nextafter(mids, torch.full_like(mids, 1e9)), torch.nextafter(mids, torch.full_like(mids, -1e9))
    bf16 = torch.tensor([1.0, 1.5, 3.0, 100.0, 2.0**-100]).bfloat16().float()
    step = bf16 * 2.0**-8
    bf16_mids = torch.cat([bf16 + step / 2, bf16 + 3 * step / 2])
    bf16_near = torch.cat([torch.nextafter(bf16_mids, bf16_mids * 2), torch.nextafter(bf16_mids, bf16_mids / 2)])
    past = torch.tensor([torch.nextafter(torch.tensor(448.0), torch.tensor(1e9)).item(), 464.0, 480.0, 1e6,
                         float("inf")])
    values = torch.cat([e4m3, mids, up, down, bf16_mids, bf16_near, past])
    return torch.cat([values, -values, torch.tensor([float("nan"), 0.0, -0.0])]).contiguous()


def run(device: str) -> None:
    check(f"the Triton kernels run on {device}", kernel_device() == device)
    gen = torch.Generator().manual_seed(0)

    def make(*shape, spread=3.0):
        return (torch.randn(*shape, generator=gen) * spread).to(torch.bfloat16).to(device)

    for rows, cols in [(37, 100), (5, 1408), (3, 6144)]:
        h, g = make(rows, cols), make(rows, cols, spread=1e-3)
        compare(f"GELU [{rows}, {cols}]", A.gelu_fp8_rows(h), A.gelu_rows_reference(h), F.gelu(h.double()), h)
        compare(f"gelu_backward [{rows}, {cols}]", A.gelu_backward_fp8_rows(g, h),
                A.gelu_backward_rows_reference(g, h), torch.ops.aten.gelu_backward(g.double(), h.double()), g * h,
                need=0.95)
    check_bf16_rounding(device)
    v = rounding_sweep().to(device)
    b, e = A.kernel_roundings(v)
    want_b, want_e = v.bfloat16().float(), v.clamp(-448.0, 448.0).to(torch.float8_e4m3fn).view(torch.uint8)
    check("the rounding sweep: bf16 values and e4m3 codes as PyTorch's casts", torch.equal(e.cpu(), want_e.cpu())
          and bool(((b.view(torch.int32) == want_b.view(torch.int32)) | (b.isnan() & want_b.isnan())).all()))
    hand_worked(device)
    check_erf(device)
    check_special_rows(make)
    if device == "cuda":
        check_native_casts(make)
    strided = make(4, 64)[:, :32]
    compare("a row stride other than the width", A.gelu_fp8_rows(strided), A.gelu_rows_reference(strided),
            F.gelu(strided.double()), strided)
    g, h = make(6, 64)[:, 32:], make(6, 48)[:, :32]
    compare("gelu_backward, two row strides", A.gelu_backward_fp8_rows(g, h), A.gelu_backward_rows_reference(g, h),
            torch.ops.aten.gelu_backward(g.double(), h.double()), g * h, need=0.95)
    empty = A.gelu_fp8_rows(make(0, 32))
    check("no rows", empty[0].shape == (0, 32) and empty[1].shape == (0, 1))
    wide = make(2, 8).float()  # float32 rows: not the kernel's; the reference, bit for bit
    q, s = A.gelu_fp8_rows(wide)
    q_ref, s_ref = A.gelu_rows_reference(wide)
    check("float32 rows take the reference", torch.equal(q.view(torch.uint8), q_ref.view(torch.uint8))
          and torch.equal(s, s_ref))
    check_refused([("three dims", lambda: A.gelu_fp8_rows(make(2, 3, 8))),
                   ("two shapes", lambda: A.gelu_backward_fp8_rows(make(2, 8), make(2, 16)))])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    run(parser.parse_args().device)
    print(f"all {CHECKS[0]} checks passed", flush=True)
