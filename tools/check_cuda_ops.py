"""Check the CUDA native ops on a GPU machine: built, and equal to the fallback forward and backward.

Usage (from the repository root, on a machine with a GPU):
    OPENTAD_EXT=all pip install -e .        # or: python tools/check_cuda_ops.py --build
    python tools/check_cuda_ops.py

For ``align1d_cuda`` and ``boundary_pooling_cuda`` it compares, on random
inputs with the awkward cases (rois outside the features, shorter than one
position, ties, reversed bounds), the compiled CUDA op with the pure-PyTorch
fallback run on the same GPU and with the CPU result, forward and backward,
and runs ``torch.autograd.gradcheck`` in float64. Prints one line per check
and exits 1 if any fails (or if an op is not built).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]


def build() -> None:
    """Compile every op in place (``OPENTAD_EXT=all``)."""
    env = dict(os.environ, OPENTAD_EXT="all")
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=ROOT, env=env, check=True)


def compare(op: Callable, x: torch.Tensor, other: torch.Tensor, tol: float) -> Tuple[bool, str]:
    """Forward and input-gradient of ``op`` on CUDA (compiled vs fallback) and against the CPU."""
    grad = torch.randn(op(x, other, "torch").shape, dtype=x.dtype, device=x.device)
    outs, grads = [], []
    for backend, device in (("compiled", x.device), ("torch", x.device), ("torch", torch.device("cpu"))):
        inp = x.detach().to(device).requires_grad_(True)
        out = op(inp, other.to(device), backend)
        out.backward(grad.to(device))
        outs.append(out.detach().cpu())
        grads.append(inp.grad.cpu())
    errors = [(outs[0] - o).abs().max().item() for o in outs[1:]] + [
        (grads[0] - g).abs().max().item() for g in grads[1:]
    ]
    return max(errors) <= tol, "max |diff| fwd vs gpu/cpu fallback {:.2e}/{:.2e}, bwd {:.2e}/{:.2e}".format(*errors)


def align_inputs(device, dtype, gen) -> Tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(3, 16, 50, generator=gen, dtype=dtype).to(device)
    start = torch.rand(300, generator=gen, dtype=dtype) * 60 - 6
    size = torch.rand(300, generator=gen, dtype=dtype) * 40
    size[:20] = 0.3  # shorter than one position
    rois = torch.stack([torch.randint(0, 3, (300,), generator=gen).to(dtype), start, start + size], dim=1)
    return x, rois.to(device)


def pool_inputs(device, dtype, gen) -> Tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(0, 9, (2, 32, 60), generator=gen).to(dtype).to(device)  # many ties
    segments = (torch.rand(2, 60, 4, generator=gen) * 66 - 3).to(dtype).to(device)
    return x, segments


def checks(device: torch.device) -> List[Tuple[str, bool, str]]:
    from opentad.models.roi_heads.roi_extractors import align1d, boundary_max_pooling

    gen = torch.Generator().manual_seed(0)
    results = []
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        for ratio in (0, 2):
            x, rois = align_inputs(device, dtype, gen)
            ok, msg = compare(lambda a, r, b, ratio=ratio: align1d(a, r, 8, ratio, backend=b), x, rois, tol)
            results.append((f"align1d_cuda {dtype} ratio={ratio}", ok, msg))
        x, seg = pool_inputs(device, dtype, gen)
        ok, msg = compare(lambda a, s, b: boundary_max_pooling(a, s, backend=b), x, seg, tol)
        results.append((f"boundary_pooling_cuda {dtype}", ok, msg))
    x, rois = align_inputs(device, torch.float64, gen)
    x = x[:, :2, :20].contiguous().requires_grad_(True)
    rois = rois[:12].clone()
    rois[:, 1:] = rois[:, 1:].clamp(-2, 22)
    ok = torch.autograd.gradcheck(lambda a: align1d(a, rois, 4, 0, backend="compiled"), (x,))
    results.append(("align1d_cuda gradcheck float64", ok, ""))
    x = torch.randn(1, 4, 16, generator=gen, dtype=torch.float64).to(device).requires_grad_(True)
    seg = (torch.rand(1, 9, 4, generator=gen, dtype=torch.float64) * 18 - 1).to(device)
    ok = torch.autograd.gradcheck(lambda a: boundary_max_pooling(a, seg, backend="compiled"), (x,))
    results.append(("boundary_pooling_cuda gradcheck float64", ok, ""))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="compile the ops in place first (OPENTAD_EXT=all)")
    args = parser.parse_args(argv)
    if args.build:
        build()
    if not torch.cuda.is_available():
        print("FAIL: no GPU visible (torch.cuda.is_available() is False)")
        return 1
    from opentad.ops import load_op, op_status

    missing = [s.name for s, ok, why in op_status() if s.device == "cuda" and not ok]
    for spec, ok, why in op_status():
        print(f"{spec.name:24s} {'compiled' if ok else 'NOT BUILT: ' + why}")
    if missing:
        print(f"FAIL: CUDA ops not built: {missing}. Run `OPENTAD_EXT=all pip install -e .` on this machine.")
        return 1
    assert load_op("align1d_cuda") is not None
    results = checks(torch.device("cuda"))
    for name, ok, msg in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name}  {msg}")
    failed = [name for name, ok, _ in results if not ok]
    print(f"\n{len(results) - len(failed)}/{len(results)} checks passed on {torch.cuda.get_device_name()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
