"""Command line of :mod:`benchmarks.step` (the full detector training step, AdaTAD against QLoRA, with MFU)."""
import argparse
import logging
import sys
from typing import Any, Dict

import _repo  # noqa: F401  (the repository root on sys.path)
import torch

from benchmarks import step


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=step.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="s,b,l,h,g,g224", help=f"comma-separated, from {list(step.SIZES)}")
    parser.add_argument("--configs", default=None, metavar="ADATAD,QLORA",
                        help="measure this config pair instead of --sizes (size 'custom')")
    parser.add_argument("--variants", nargs="*", default=[], metavar="NAME=key=value[,key=value]",
                        help="extra rows: cfg-options applied onto the QLoRA config, "
                             "e.g. chunks2=model.backbone.custom.backward_chunks=2")
    parser.add_argument("--common", default=None, metavar="key=value[,key=value]",
                        help="cfg-options applied onto every row, AdaTAD's too (under a variant's own), e.g. a "
                             "process-wide setting such as model.backbone.custom.attention_kernels=cudnn")
    parser.add_argument("--batch", type=int, default=None, help="videos per step (default 2; 1 for g224)")
    parser.add_argument("--frames", type=int, default=None, help="frames per video (default: the config's)")
    parser.add_argument("--img-size", type=int, default=None, help="frame size in px (default: the config's)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seeds weights, frames and targets")
    parser.add_argument("--forward-only", action="store_true", help="add the frozen ViT's bf16 forward per size")
    parser.add_argument("--deterministic", action="store_true",
                        help="deterministic kernels, as tools/train.py without --disable_deterministic (default: off)")
    parser.add_argument("--profile", action="store_true",
                        help="profile one more step per row: device time per kind of kernel, and idle time")
    parser.add_argument("--profile-memory", action="store_true",
                        help="record every allocation of each row's steps (CUDA; slows them): what is alive at the "
                             "peak, and what each memory pool (a CUDA graph's) holds")
    parser.add_argument("--ema", action="store_true", help="include the EMA update where solver.ema is set")
    parser.add_argument("--peak-size", type=int, default=None, help="matmul size of the peak (8192 on CUDA, 512 CPU)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the rows here (atomically)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def main(argv=None) -> Dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    result = step.run(args)
    print(step.format_table(result), flush=True)
    if args.json:
        step.write_json(result, args.json)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
