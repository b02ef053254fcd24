"""Command line of :mod:`benchmarks.actionformer` (time and memory of ActionFormer); see --help."""
import argparse
import sys

import _repo  # noqa: F401  (the repository root on sys.path)
import torch

from benchmarks import actionformer


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=actionformer.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--length", type=int, default=2304)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--amp", action="store_true", help="float16 autocast (CUDA)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    actionformer.run(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
