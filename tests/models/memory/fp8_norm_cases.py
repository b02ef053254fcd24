"""The fused layer norm of ``opentad/models/memory/fp8_norm.py`` (its Triton kernel) against the eager ops; run by
test_fp8_norm.py in a fresh process (``--device cpu``: Triton's interpreter; ``cuda``: the GPU).

Error model, as fp8_activation_cases.py's: the kernel's mean and variance are two float32 sums where PyTorch
sums by Welford's method, so a bf16 output can land one bf16 step from eager's, a row's scale moves by at most
that, a quantized value by at most one e4m3 step; against the layer norm in float64 each stored value ``q s``
is within ``(2^-4 + 2^-6) |y| + 2^-10 s + 2^-20 max|w|``, and at least 99.9% of the values must be eager's bit
for bit. The mean of ``C`` values of magnitude at most ``M``, summed in float32 in any order, is within
``C 2^-24 M`` of the exact one (each of at most ``C - 1`` additions rounds by at most ``2^-24`` of a partial sum
of magnitude at most ``C M``, divided by ``C``; the division adds ``2^-24 |mean|``); ``rstd`` within ``(C + 8)
2^-24`` of itself (the squared deviations' sum likewise, the mean's error entering squared, then a division, a
square root and a reciprocal, each correctly rounded: ``2^-24`` relative).
"""
import argparse

import torch
import torch.nn.functional as F

from opentad.models.memory import fp8_norm as N
from opentad.models.memory.fp8_rows import kernel_device
from tests.models.memory.fp8_activation_cases import compare, f32_quotient, same_codes
from tests.models.memory.kernel_cases import CHECKS, check, check_refused


def check_statistics(name: str, mean, rstd, x, eps) -> None:
    """The kernel's mean and ``rstd`` ``[R, 1]`` against float64's, within the module's error model."""
    x64 = x.double().cpu()
    cols = x.shape[1]
    mean64 = x64.mean(dim=1, keepdim=True)
    rstd64 = 1.0 / torch.sqrt(x64.var(dim=1, unbiased=False, keepdim=True) + eps)
    mean_bound = cols * 2.0**-24 * x64.abs().amax(dim=1, keepdim=True)
    check(f"{name}: float32 mean and rstd [R, 1]", mean.dtype == rstd.dtype == torch.float32
          and mean.shape == rstd.shape == (x.shape[0], 1))
    check(f"{name}: mean within C 2^-24 max|x| of float64's", bool(((mean.cpu() - mean64).abs() <= mean_bound).all()))
    check(f"{name}: rstd within (C + 8) 2^-24 of float64's",
          bool(((rstd.cpu() - rstd64).abs() <= (cols + 8) * 2.0**-24 * rstd64).all()))


def run(device: str) -> None:
    check(f"the Triton kernels run on {device}", kernel_device() == device)
    gen = torch.Generator().manual_seed(0)

    def make(*shape, spread=3.0):
        return (torch.randn(*shape, generator=gen) * spread).to(torch.bfloat16).to(device)

    def reference(x, w, b, eps):
        return N.layer_norm_rows_reference(x, w, b, eps)[:2]

    def exact(x, w, b, eps):
        return F.layer_norm(x.double(), (x.shape[1],), w.double(), b.double(), eps)

    for rows, cols in [(37, 100), (5, 1408), (3, 6144)]:
        w, b = make(cols, spread=1.0), make(cols, spread=0.1)
        x = make(rows, cols) + make(rows, 1, spread=10.0)  # rows off centre: the mean matters
        q, s, mean, rstd = N.layer_norm_fp8_rows(x, w, b, 1e-6)
        compare(f"layer norm [{rows}, {cols}]", (q, s), reference(x, w, b, 1e-6), exact(x, w, b, 1e-6), w)
        check_statistics(f"layer norm [{rows}, {cols}]", mean, rstd, x, 1e-6)
    x = make(16, 256, spread=0.01)  # variance about eps: eps inside the square root matters
    w, b = make(256, spread=1.0), make(256, spread=0.1)
    q, s, mean, rstd = N.layer_norm_fp8_rows(x, w, b, 1e-4)
    compare("layer norm, variance about eps", (q, s), reference(x, w, b, 1e-4), exact(x, w, b, 1e-4), w)
    check_statistics("layer norm, variance about eps", mean, rstd, x, 1e-4)
    x = torch.tensor([[1.0, 3.0, 1.0, 3.0]], dtype=torch.bfloat16, device=device)
    ones = torch.ones(4, dtype=torch.bfloat16, device=device)
    q, s, mean, rstd = N.layer_norm_fp8_rows(x, ones, torch.zeros_like(ones), 0.0)
    check("hand-worked layer norm [1, 3, 1, 3] -> [-1, 1, -1, 1] -> [-448, 448, -448, 448], scale 1/448, mean 2, "
          "rstd 1", q.float().cpu().tolist() == [[-448.0, 448.0, -448.0, 448.0]]
          and s.item() == f32_quotient(1.0, 448.0) and mean.item() == 2.0 and rstd.item() == 1.0)
    nan_rows, w, b = make(3, 1408), make(1408), make(1408)
    nan_rows[1, 1100] = float("nan")  # in the third piece: the row maximum across pieces must carry it
    q, s = N.layer_norm_fp8_rows(nan_rows, w, b, 1e-6)[:2]
    q_ref, s_ref = reference(nan_rows, w, b, 1e-6)
    check("a NaN in a row's third piece: that row's scale and values NaN as the reference's, the others finite",
          s.isnan().flatten().cpu().tolist() == [False, True, False] == s_ref.isnan().flatten().cpu().tolist()
          and bool(q[1].float().isnan().all()) and bool(q_ref[1].float().isnan().all())
          and not bool(q[[0, 2]].float().isnan().any()))
    if device == "cuda":
        w, b = make(1408, spread=1.0), make(1408, spread=0.1)
        x = make(9, 1408)
        got = N.launch_layer_norm_rows(x, w, b, 1e-6, native_casts=False)
        native = N.launch_layer_norm_rows(x, w, b, 1e-6)
        check("native casts: the layer norm's codes and statistics as the integer arithmetic's",
              same_codes(got[0].view(torch.uint8), native[0].view(torch.uint8))
              and all(torch.equal(a, b) for a, b in zip(got[1:], native[1:])))
    strided = make(4, 128)[:, :64]
    w, b = make(64), make(64)
    compare("a row stride other than the width", N.layer_norm_fp8_rows(strided, w, b, 1e-6)[:2],
            reference(strided, w, b, 1e-6), exact(strided, w, b, 1e-6), w)
    empty = N.layer_norm_fp8_rows(make(0, 32), make(32), make(32), 1e-6)
    check("no rows", empty[0].shape == (0, 32) and all(t.shape == (0, 1) for t in empty[1:]))
    x, w, b = make(2, 8).float(), make(8), make(8)  # float32 rows: not the kernel's; the reference, bit for bit
    got, want = N.layer_norm_fp8_rows(x, w, b, 1e-6), N.layer_norm_rows_reference(x, w, b, 1e-6)
    check("float32 rows take the reference", torch.equal(got[0].view(torch.uint8), want[0].view(torch.uint8))
          and all(torch.equal(a, b) for a, b in zip(got[1:], want[1:])))
    check_refused([
        ("three dims", lambda: N.layer_norm_fp8_rows(make(2, 3, 8), make(8), make(8), 1e-6)),
        ("a weight of another width", lambda: N.layer_norm_fp8_rows(make(2, 8), make(4), make(8), 1e-6)),
        ("the kernel with float32 rows", lambda: N.launch_layer_norm_rows(make(2, 8).float(), make(8), make(8), 0.1)),
        ("the kernel with a float32 weight",
         lambda: N.launch_layer_norm_rows(make(2, 8), make(8).float(), make(8), 0.1)),
        ("the kernel with three warps", lambda: N.launch_layer_norm_rows(make(2, 8), make(8), make(8), 0.1,
                                                                         num_warps=3))])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    run(parser.parse_args().device)
    print(f"all {CHECKS[0]} checks passed", flush=True)
