"""Command line of :mod:`benchmarks.backbone` (peak memory and step time of the video backbone); see --help."""
import argparse
import sys
from typing import Any, Dict, List

import _repo  # noqa: F401  (the repository root on sys.path)
import torch

from benchmarks import backbone
from benchmarks.backbone_modes import MODES, SIZES


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=backbone.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="s,b,l,h,g", help=f"comma-separated, from {sorted(SIZES)}")
    parser.add_argument("--modes", default="adapter,frozen,fullft", help=f"comma-separated, from {sorted(MODES)}")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", default="768", help="frames per video window (multiples of 16), comma-separated")
    parser.add_argument("--img-size", type=int, default=160)
    parser.add_argument("--adapter-start", type=int, default=0, help="first block with an adapter (20: g 224 px recipe)")
    parser.add_argument("--amp", choices=sorted(backbone.AMP), default="none",
                        help="autocast dtype (modes in MODE_AMP fix theirs)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seeds weights and frames, the same in every mode")
    parser.add_argument("--backward-chunks", type=int, default=4, help="row groups of the *_chunked modes")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="cuDNN autotuning on, as training runs without deterministic kernels (its trial "
                             "workspaces count in the peak)")
    parser.add_argument("--profile-memory", action="store_true", help="name the top memory consumers at the peak")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def main(argv=None) -> List[Dict[str, Any]]:
    return backbone.run(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
