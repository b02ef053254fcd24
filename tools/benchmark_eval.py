"""Command line of :mod:`benchmarks.evaluation` (an evaluator on a THUMOS- or ActivityNet-sized case, one thread)."""
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # before numpy loads
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402

import _repo  # noqa: E402,F401  (the repository root on sys.path)

from benchmarks import evaluation  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=evaluation.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluator", choices=sorted(evaluation.EVALUATORS), default="mAP")
    parser.add_argument("--preset", choices=sorted(evaluation.PRESETS), default="thumos")
    parser.add_argument("--task", choices=["verb", "noun", "action"], default="verb", help="mAP_EPIC's task")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--near-fraction", type=float, nargs="+", default=[0.0, 0.4, 1.0])
    return parser.parse_args(argv)


def main(argv=None) -> None:
    evaluation.run(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
