"""Command line of :mod:`benchmarks.proposal_map` (BMN's boundary-matching layer, sparse vs dense); see --help."""
import argparse
import sys

import _repo  # noqa: F401  (the repository root on sys.path)

from benchmarks import proposal_map


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=proposal_map.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    proposal_map.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    return proposal_map.run(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
