"""Command line of :mod:`benchmarks.ddp` (the several-GPU DDP check and benchmark; CPU smoke run); see --help."""
import argparse
import os
import sys

import _repo  # noqa: F401  (the repository root on sys.path)

from benchmarks.ddp import runs


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=runs.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="where the synthetic data and caches are (made if missing)")
    p.add_argument("--out", required=True, help="output folder: configs, logs, summary.md (and work dirs)")
    p.add_argument("--procs", type=int, default=2, help="processes (GPUs) of the DDP runs (default: 2)")
    p.add_argument("--smoke", action="store_true", help="CPU smoke run: tiny config, tiny data, a few iterations")
    p.add_argument("--runs", default=None, help="comma-separated run names to do (default: all; see OUT/summary.md)")
    p.add_argument("--tiny-epochs", type=int, default=None, help="epochs of the tiny runs (default 15; smoke 2)")
    p.add_argument("--tiny-videos", type=int, default=None, help="tiny training videos (default 40; smoke 4)")
    p.add_argument("--s-epochs", type=int, default=5, help="epochs of the ViT-S DDP runs (default: 5)")
    p.add_argument("--single-epochs", type=int, default=3, help="epochs of the one-GPU runs (default: 3)")
    p.add_argument("--s-videos", type=int, default=16, help="rendered ViT-S training videos (default: 16)")
    p.add_argument("--s-repeat", type=int, default=6, help="times each ViT-S video is listed (default: 6)")
    p.add_argument("--s-seconds", default="60,120", help="min,max ViT-S video length in s (default: 60,120)")
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1), help="rendering processes")
    p.add_argument("--loader-workers", type=int, default=None,
                   help="ViT-S loader workers per process (default: the cached recipe's, fewer if /dev/shm is small)")
    p.add_argument("--s-augment", choices=("gpu", "cpu"), default="gpu",
                   help="ViT-S augmentation: the cached recipe's, on the GPU (default), or the recipe's, on the CPU")
    p.add_argument("--deterministic", action="store_true", help="keep deterministic kernels (default: fastest)")
    p.add_argument("--sequential", action="store_true", help="run the one-GPU runs one after the other")
    p.add_argument("--run-timeout", type=float, default=None, help="seconds before a run is stopped")
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds for the whole command: runs still going then are stopped, later ones skipped")
    p.add_argument("--work-root", default=None, help="work dirs (checkpoints) of the runs (default: OUT/work)")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="overrides passed to every run picked by --runs (so only keys that all their configs "
                        "have: e.g. model.backbone.data_preprocessor.augment_chunk_frames=128 with --runs s_qlora_x2, "
                        "the ViT-S runs with GPU augmentation); work_dir and workflow.end_epoch are the tool's")
    args = p.parse_args(argv)
    args.tiny_epochs = args.tiny_epochs or (2 if args.smoke else 15)
    args.tiny_videos = args.tiny_videos or (4 if args.smoke else 40)
    if args.procs < 2:
        p.error(f"--procs must be >= 2 for a DDP check, got {args.procs}")
    bad = [o for o in args.cfg_options if "=" not in o]
    if bad:
        p.error(f"--cfg-options: expected KEY=VALUE, got {bad}")
    reserved = [o for o in args.cfg_options if o.split("=", 1)[0] in ("work_dir", "workflow.end_epoch")]
    if reserved:
        p.error(f"--cfg-options: {reserved} set by the tool per run (use --work-root, --s-epochs, ...)")
    return args


def main(argv=None) -> int:
    return runs.run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
