"""Command line of :mod:`benchmarks.decode` (video decoders for the end-to-end data pipeline); see --help."""
import argparse
import sys

import _repo  # noqa: F401  (the repository root on sys.path)

from benchmarks import decode


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=decode.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", help="folder of *.mp4 to measure")
    parser.add_argument("--make-videos", help="folder to write synthetic videos to (kept for reuse)")
    parser.add_argument("--num-videos", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--size", default="320x180", help="WxH of synthetic videos")
    parser.add_argument("--window", type=int, default=768)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--windows", type=int, default=4, help="random windows per video")
    parser.add_argument("--backends", default=",".join(decode.BACKENDS),
                        help=f"comma list of {list(decode.BACKENDS)}")
    parser.add_argument("--pipeline-samples", type=int, default=0,
                        help="also time the AdaTAD THUMOS training pipeline on this many samples")
    args = parser.parse_args(argv)
    if bool(args.videos) == bool(args.make_videos):
        parser.error("give exactly one of --videos and --make-videos")
    unknown = [n for n in args.backends.split(",") if n and n not in decode.BACKENDS]
    if unknown:
        parser.error(f"unknown backend(s) {unknown}; valid: {list(decode.BACKENDS)}")
    return args


def main(argv=None) -> None:
    decode.run(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
