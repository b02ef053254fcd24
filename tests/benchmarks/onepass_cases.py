"""The one-pass fusion kernels (``benchmarks/onepass_kernels.py``) against the eager ops; run by
test_onepass_kernels.py in a fresh process (Triton's interpreter for ``--device cpu``).

Error model: a kernel computes the activation in float32 with the eager op's formula but its own ``erf``,
``exp`` and sums, then rounds to bf16. Where the formula cancels (GELU's derivative of a negative input:
``cdf + h pdf`` near 0) float32 implementations differ by a few units of ``2^-24 max|h|`` in absolute terms,
elsewhere by a few units in the last place, so a bf16 value can land one bf16 step (at most 2^-7 of it) from
eager's; a row's scale moves by at most that, a scaled value by about 2^-6 relative, which can round to the
neighbouring e4m3 value (2^-3 of the value apart at most; 2^-9 among subnormals) and no further. Against the
activation in float64 each stored value ``q s`` is within ``(2^-4 + 2^-6) |y| + 2^-10 s + 2^-20 max|input|``
(e4m3's and bf16's rounding, e4m3's subnormal half step, float32's evaluation). Flips are rare: at least 99.9%
of GELU's and the layer norm's values must be eager's bit for bit (measured 99.94-100% on the CPU), at least
95% of ``gelu_backward``'s (about 2% flip where the CPU's vectorised ``exp`` and ``erf`` and Triton's differ
under cancellation). The bf16 rounding itself is checked value by value (ties both ways, overflow, inf, NaN).
"""
import argparse

import torch
import torch.nn.functional as F

from benchmarks import onepass_kernels as K
from opentad.models.memory.fp8_rows import quantize_rows_reference
from tests.models.memory.kernel_cases import CHECKS, check


def compare(name: str, got, want, exact: torch.Tensor, inputs: torch.Tensor, need: float = 0.999) -> None:
    """``got`` and ``want``: (q, scale) of the kernel and of eager; ``exact``: the activation in float64;
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
    same = (q.view(torch.uint8) == q_ref.view(torch.uint8)).float().mean().item()
    check(f"{name}: {same:.4f} of the values bit for bit (at least {need})", same >= need)


def check_round_bf16(device: str) -> None:
    """The kernels' rounding to bf16 against PyTorch's cast (to nearest, ties to even), value by value: ties
    both ways, values next to ties, the largest finite values and overflow, infinities, NaN, subnormals."""
    bits = [0x3F808000, 0x3F818000, 0x3F808001, 0x3F817FFF, 0xBF808000, 0xBF818000, 0x7F7F7FFF, 0x7F7F8000,
            0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x00008000, 0x00018000, 0x00000001, 0x80000000, 0]
    v = torch.tensor(bits, dtype=torch.int64).to(torch.int32).view(torch.float32).to(device)
    got = K.round_bf16(v).cpu()
    want = v.to(torch.bfloat16).float().cpu()
    same = (got.view(torch.int32) == want.view(torch.int32)) | (got.isnan() & want.isnan())
    check("bf16 rounding: ties to even, overflow to inf, inf, NaN, subnormals, as PyTorch's cast", bool(same.all()))
    check("hand-worked ties: 0x3F808000 -> 0x3F800000, 0x3F818000 -> 0x3F820000",
          got.view(torch.int32)[:2].tolist() == [0x3F800000, 0x3F820000])


def f32_quotient(a: float, b: float) -> float:
    """``a / b`` correctly rounded to float32 (what the kernels' scale is for a row maximum ``a``)."""
    return (torch.tensor(a) / torch.tensor(b)).item()


def run(device: str) -> None:
    gen = torch.Generator().manual_seed(0)

    def make(*shape, spread=3.0):
        return (torch.randn(*shape, generator=gen) * spread).to(torch.bfloat16).to(device)

    for rows, cols in [(37, 100), (5, 1408), (3, 6144)]:
        h, g = make(rows, cols), make(rows, cols, spread=1e-3)
        compare(f"GELU [{rows}, {cols}]", K.gelu_rows(h), quantize_rows_reference(F.gelu(h)), F.gelu(h.double()), h)
        compare(f"gelu_backward [{rows}, {cols}]", K.gelu_backward_rows(g, h),
                quantize_rows_reference(torch.ops.aten.gelu_backward(g, h)),
                torch.ops.aten.gelu_backward(g.double(), h.double()), g * h, need=0.95)
        w, b = make(cols, spread=1.0), make(cols, spread=0.1)
        x = make(rows, cols) + make(rows, 1, spread=10.0)  # rows off centre: the mean matters
        compare(f"layer norm [{rows}, {cols}]", K.layer_norm_rows(x, w, b, 1e-6),
                quantize_rows_reference(F.layer_norm(x, (cols,), w, b, 1e-6)),
                F.layer_norm(x.double(), (cols,), w.double(), b.double(), 1e-6), w)
    x = make(16, 256, spread=0.01)  # variance about eps: eps inside the square root matters
    w, b = make(256, spread=1.0), make(256, spread=0.1)
    compare("layer norm, variance about eps", K.layer_norm_rows(x, w, b, 1e-4),
            quantize_rows_reference(F.layer_norm(x, (256,), w, b, 1e-4)),
            F.layer_norm(x.double(), (256,), w.double(), b.double(), 1e-4), w)
    check_round_bf16(device)
    # hand-worked: GELU(0) = 0, GELU(8) = 8 in bf16 (erf(8/sqrt 2) = 1 in float32); gelu'(0) = 1/2, so the
    # row [g, g, ...] at h = 0 has every value g/2: all at 448 after scaling
    h = torch.tensor([[0.0, 8.0, 0.0, 8.0]], dtype=torch.bfloat16, device=device)
    q, s = K.gelu_rows(h)
    check("hand-worked GELU row [0, 8, 0, 8] -> [0, 448, 0, 448], scale 8/448",
          q.float().cpu().tolist() == [[0.0, 448.0, 0.0, 448.0]] and s.item() == f32_quotient(8.0, 448.0))
    q, s = K.gelu_backward_rows(torch.full((1, 4), 3.0, dtype=torch.bfloat16, device=device), torch.zeros_like(h))
    check("hand-worked gelu_backward at 0: 3 * 1/2 everywhere -> 448, scale 1.5/448",
          q.float().cpu().tolist() == [[448.0] * 4] and s.item() == f32_quotient(1.5, 448.0))
    x = torch.tensor([[1.0, 3.0, 1.0, 3.0]], dtype=torch.bfloat16, device=device)
    ones = torch.ones(4, dtype=torch.bfloat16, device=device)
    q, s = K.layer_norm_rows(x, ones, torch.zeros_like(ones), 0.0)
    check("hand-worked layer norm [1, 3, 1, 3] -> [-1, 1, -1, 1] -> [-448, 448, -448, 448], scale 1/448",
          q.float().cpu().tolist() == [[-448.0, 448.0, -448.0, 448.0]] and s.item() == f32_quotient(1.0, 448.0))
    strided = make(4, 64)[:, :32]
    compare("a row stride other than the width", K.gelu_rows(strided), quantize_rows_reference(F.gelu(strided)),
            F.gelu(strided.double()), strided)
    empty = K.gelu_rows(make(0, 32))
    check("no rows", empty[0].shape == (0, 32) and empty[1].shape == (0, 1))
    for bad, call in [("a column stride", lambda: K.gelu_rows(make(8, 4).t())),
                      ("two shapes", lambda: K.gelu_backward_rows(make(2, 8), make(2, 16))),
                      ("a weight of another width", lambda: K.layer_norm_rows(make(2, 8), make(4), make(8))),
                      ("float32 rows", lambda: K.gelu_rows(make(2, 8).float()))]:
        try:
            call()
            check(f"{bad} refused", False)
        except ValueError:
            check(f"{bad} refused", True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    run(parser.parse_args().device)
    print(f"all {CHECKS[0]} checks passed", flush=True)
