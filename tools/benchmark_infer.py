"""Command line of :mod:`benchmarks.inference` (single-video inference and feature extraction); see --help."""
import argparse
import sys

import _repo  # noqa: F401  (the repository root on sys.path)

from benchmarks import inference
from opentad.utils.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=inference.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the generated video")
    parser.add_argument("--size", default="320x180", help="WxH of the generated video (THUMOS: 320x180)")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--device", default=None)
    parser.add_argument("--extract", action="store_true", help="also time feature extraction")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward for --extract")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default=None)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    inference.run(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
