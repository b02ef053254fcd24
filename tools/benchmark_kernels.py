"""Command line of :mod:`benchmarks.kernels` (fp8 products, the row quantizer, the fused residual, attention's
backends, the compiled fp8 row fusions)."""
import argparse
import sys

import _repo  # noqa: F401  (the repository root on sys.path)
import torch

from benchmarks import kernels


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=kernels.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", default="g", help=f"comma-separated, from {list(kernels.SIZES)}")
    parser.add_argument("--rows", type=int, default=None, help="tokens per call (default: a THUMOS step's)")
    parser.add_argument("--repeat", type=int, default=10, help="timed calls (median reported)")
    parser.add_argument("--fusions", action="store_true",
                        help="also the compiled fp8 row fusions per compile mode (Inductor: minutes on a CPU)")
    args = parser.parse_args(argv)
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    bad = [s for s in args.sizes if s not in kernels.SIZES]
    if bad or not args.sizes:
        parser.error(f"--sizes {bad or args.sizes}: choose from {list(kernels.SIZES)}")
    if args.rows is not None and args.rows < 1:
        parser.error(f"--rows must be >= 1, got {args.rows}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False")
    return args


def main(argv=None):
    return kernels.run(parse_args(argv))


if __name__ == "__main__":
    main()
    sys.exit(0)
