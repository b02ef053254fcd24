"""Command line of :mod:`benchmarks.detectors` (training-iteration time and peak memory per detector); see --help."""
import argparse
import sys

import _repo  # noqa: F401  (the repository root on sys.path)

from benchmarks import detectors


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=detectors.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    detectors.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    return detectors.run(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
