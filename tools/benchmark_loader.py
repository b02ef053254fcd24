"""Command line of :mod:`benchmarks.loader` (training data loaders, frames/s and data-wait share); see --help."""
import argparse
import os
import sys

import _repo  # noqa: F401  (the repository root on sys.path)
import torch

from benchmarks import loader
from opentad.utils.config import DictAction


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=loader.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--make-videos", metavar="DIR", help="generate the synthetic THUMOS-size subset here")
    data.add_argument("--data", metavar="DIR", help="an existing synthetic dataset folder")
    p.add_argument("--num-videos", type=int, default=16, help="with --make-videos (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=155.0, help="video length with --make-videos (default: 155)")
    p.add_argument("--size", default="320x180", help="frame size with --make-videos (default: %(default)s)")
    p.add_argument("--config", default=loader.DEFAULT_CONFIG, help="cached recipe (default: %(default)s)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                   help="config overrides, e.g. solver.train.batch_size=4 (custom.pretrain is always None)")
    p.add_argument("--formats", default="npy,jpeg", help="cache formats to measure (default: %(default)s)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2), help="loader workers")
    p.add_argument("--prefetch", type=int, default=2, help="batches prefetched per worker (default: 2)")
    p.add_argument("--no-pin-memory", action="store_true", help="do not pin host memory")
    p.add_argument("--batches", type=int, default=200, help="batches of the cached-gpu loader (default: 200)")
    p.add_argument("--slow-batches", type=int, default=30, help="batches of the raw and cached-cpu loaders")
    p.add_argument("--warmup", type=int, default=5, help="batches left out of the steady rate (default: 5)")
    p.add_argument("--decode-threads", type=int, default=1, help="decoder threads per raw sample (default: 1)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--train", action="store_true", help="also measure the data-wait share of training steps")
    p.add_argument("--train-steps", type=int, default=200, help="steps fed by the cached-gpu loader")
    p.add_argument("--train-raw-steps", type=int, default=30, help="steps fed by the raw loader (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    buffered = args.workers * args.prefetch  # samples the loader can have ready before it is timed
    for name in ("batches", "slow_batches"):
        measured = getattr(args, name) - args.warmup
        if measured * 2 <= buffered:  # the recipe's batch: 2 samples
            print(f"warning: --{name.replace('_', '-')} {getattr(args, name)} leaves {measured} timed batches, "
                  f"fewer than the {buffered} samples {args.workers} workers x prefetch {args.prefetch} hold ready: "
                  "those rates measure the buffer, not the loader", file=sys.stderr)
    return args


def main(argv=None):
    return loader.run(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
