"""Command line of :mod:`benchmarks.augment` (the batched GPU augmentation against its chunk size); see --help."""
import argparse
import sys

import _repo  # noqa: F401  (the repository root on sys.path)
import torch

from benchmarks import augment


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=augment.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=augment.DEFAULT_CONFIG, help="config whose data preprocessor has `augment`")
    p.add_argument("--chunks", default="64,128,256,768", help="comma-separated chunk_frames values")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--frames", type=int, default=768)
    p.add_argument("--size", default="182x323", help="input HxW (the cache's short side 182 of 320x180 video)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (each chunk size once per round)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    try:
        args.chunks = [int(c) for c in args.chunks.split(",") if c.strip()]
    except ValueError:
        p.error(f"--chunks: comma-separated integers, got {args.chunks!r}")
    if not args.chunks or min(args.chunks) < 1:
        p.error(f"--chunks: chunk sizes must be >= 1, got {args.chunks}")
    if args.rounds < 1 or args.warmup < 0 or args.batch < 1 or args.frames < 1:
        p.error(f"--rounds, --batch, --frames must be >= 1 and --warmup >= 0, got {args.rounds}, {args.batch}, "
                f"{args.frames}, {args.warmup}")
    return args


def main(argv=None):
    return augment.run(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
