"""Command line of :mod:`benchmarks.graph_key` (the CUDA graphs' per-step key on the host); see --help."""
import argparse
import sys

import _repo  # noqa: F401  (the repository root on sys.path)

from benchmarks import graph_key


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=graph_key.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", default="12,40", help="comma-separated block counts (S: 12, g: 40)")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls (median reported)")
    args = parser.parse_args(argv)
    try:
        args.depths = [int(d) for d in args.depths.split(",")]
    except ValueError:
        parser.error(f"--depths {args.depths!r} must be comma-separated integers")
    if not args.depths or any(d < 1 for d in args.depths) or args.repeat < 1:
        parser.error(f"--depths must be >= 1 and --repeat >= 1, got {args.depths} and {args.repeat}")
    return args


def main(argv=None):
    return graph_key.run(parse_args(argv))


if __name__ == "__main__":
    main()
    sys.exit(0)
