"""The one-pass layer-norm kernel of the kernel benchmark (``benchmarks/onepass_kernels.py``) against the eager
ops; run by test_onepass_kernels.py in a fresh process (Triton's interpreter for ``--device cpu``). GELU's and
``gelu_backward``'s one-pass kernels are the library's (tests/models/memory/fp8_activation_cases.py).

Error model, as fp8_activation_cases.py's: the kernel's mean and variance are two float32 sums where PyTorch
sums by Welford's method, so a bf16 output can land one bf16 step from eager's, a row's scale moves by at most
that, a quantized value by at most one e4m3 step; against the layer norm in float64 each stored value ``q s``
is within ``(2^-4 + 2^-6) |y| + 2^-10 s + 2^-20 max|w|``. At least 99.9% of the values must be eager's bit for
bit.
"""
import argparse

import torch
import torch.nn.functional as F

from benchmarks import onepass_kernels as K
from opentad.models.memory.fp8_rows import quantize_rows_reference
from tests.models.memory.fp8_activation_cases import compare, f32_quotient
from tests.models.memory.kernel_cases import CHECKS, check, check_refused


def run(device: str) -> None:
    gen = torch.Generator().manual_seed(0)

    def make(*shape, spread=3.0):
        return (torch.randn(*shape, generator=gen) * spread).to(torch.bfloat16).to(device)

    def reference(x, w, b, eps):
        return quantize_rows_reference(F.layer_norm(x, (x.shape[1],), w, b, eps))

    def exact(x, w, b, eps):
        return F.layer_norm(x.double(), (x.shape[1],), w.double(), b.double(), eps)

    for rows, cols in [(37, 100), (5, 1408), (3, 6144)]:
        w, b = make(cols, spread=1.0), make(cols, spread=0.1)
        x = make(rows, cols) + make(rows, 1, spread=10.0)  # rows off centre: the mean matters
        compare(f"layer norm [{rows}, {cols}]", K.layer_norm_rows(x, w, b, 1e-6), reference(x, w, b, 1e-6),
                exact(x, w, b, 1e-6), w)
    x = make(16, 256, spread=0.01)  # variance about eps: eps inside the square root matters
    w, b = make(256, spread=1.0), make(256, spread=0.1)
    compare("layer norm, variance about eps", K.layer_norm_rows(x, w, b, 1e-4), reference(x, w, b, 1e-4),
            exact(x, w, b, 1e-4), w)
    x = torch.tensor([[1.0, 3.0, 1.0, 3.0]], dtype=torch.bfloat16, device=device)
    ones = torch.ones(4, dtype=torch.bfloat16, device=device)
    q, s = K.layer_norm_rows(x, ones, torch.zeros_like(ones), 0.0)
    check("hand-worked layer norm [1, 3, 1, 3] -> [-1, 1, -1, 1] -> [-448, 448, -448, 448], scale 1/448",
          q.float().cpu().tolist() == [[-448.0, 448.0, -448.0, 448.0]] and s.item() == f32_quotient(1.0, 448.0))
    empty = K.layer_norm_rows(make(0, 32), make(32), make(32))
    check("no rows", empty[0].shape == (0, 32) and empty[1].shape == (0, 1))
    check_refused([("a column stride", lambda: K.layer_norm_rows(make(8, 4).t(), make(8), make(8))),
                   ("a weight of another width", lambda: K.layer_norm_rows(make(2, 8), make(4), make(8))),
                   ("float32 rows", lambda: K.layer_norm_rows(make(2, 8).float(), make(8), make(8))),
                   ("a float32 weight", lambda: K.layer_norm_rows(make(2, 8), make(8).float(), make(8)))])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    run(parser.parse_args().device)
    print(f"all {CHECKS[0]} checks passed", flush=True)
