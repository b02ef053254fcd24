"""Command line of :mod:`benchmarks.ops` (native ops: compiled against the PyTorch fallback); see --help."""
import argparse
import sys

import _repo  # noqa: F401  (the repository root on sys.path)
import torch

from benchmarks import ops


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=ops.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small inputs (a smoke test)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the CPU runs")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv=None) -> int:
    return ops.run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
