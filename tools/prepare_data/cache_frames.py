"""Build (or check) the frame cache that ``LoadCachedFrames`` reads.

Each video is decoded once; every ``--stride``-th frame is resized to
``--short-side`` and stored as raw uint8 (``npy``, exact) or JPEG, with a
manifest per video. Fresh entries are skipped, so rerunning is cheap.
See docs/data_pipeline.md.

Examples:
    # what a config's cached pipelines need (videos, stride, resolution, folder from the config)
    python tools/prepare_data/cache_frames.py configs/adatad/thumos/e2e_thumos_videomae_s_768x1_160_adapter_cached.py \\
        --workers 16

    # a folder of videos, explicitly
    python tools/prepare_data/cache_frames.py --videos data/thumos-14/raw_data/video \\
        --out data/thumos-14/frame_cache/stride4_short182 --stride 4 --short-side 182 --format npy

    # only check: lists missing, incomplete and stale entries (exit status 1 if any)
    python tools/prepare_data/cache_frames.py CONFIG --check
"""
from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
from typing import List

from opentad.datasets.frame_cache import FORMATS, CacheSpec, build_cache, check_cache
from opentad.datasets.cache_jobs import CacheJob, cache_jobs_from_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="config whose LoadCachedFrames pipelines to serve")
    parser.add_argument("--videos", help="folder of videos (instead of a config)")
    parser.add_argument("--ext", default="mp4", help="video extension with --videos (default: %(default)s)")
    parser.add_argument("--out", help="cache folder with --videos")
    parser.add_argument("--stride", type=int, default=4, help="keep every N-th frame, with --videos (default: 4)")
    parser.add_argument("--short-side", type=int, default=182, help="with --videos; 0 keeps the size (default: 182)")
    parser.add_argument("--format", choices=FORMATS, default="npy", help="shard format (default: %(default)s)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default: %(default)s)")
    parser.add_argument(
        "--workers", type=int, default=min(8, os.cpu_count() or 1), help="processes (default: %(default)s)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild fresh entries too")
    parser.add_argument("--hash", action="store_true", help="store each video's SHA-256 in its manifest")
    parser.add_argument("--check", action="store_true", help="only report missing, incomplete and stale entries")
    return parser


def _jobs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> List[CacheJob]:
    if (args.config is None) == (args.videos is None):
        parser.error("give either a config or --videos DIR --out CACHE_DIR")
    if args.videos is not None:
        if args.out is None:
            parser.error("--videos needs --out")
        paths = sorted(glob.glob(os.path.join(args.videos, f"*.{args.ext}")))
        if not paths:
            parser.error(f"no *.{args.ext} file in {args.videos}")
        videos = [(os.path.basename(p)[: -len(args.ext) - 1], p) for p in paths]
        return [CacheJob("videos", args.out, args.stride, args.short_side or None, videos)]
    from opentad.utils.config import load_config

    merged: dict = {}
    for job in cache_jobs_from_config(load_config(args.config)):
        key = (job.cache_dir, job.stride, job.short_side)
        if key in merged:
            merged[key].videos = sorted(set(merged[key].videos) | set(job.videos))
        else:
            merged[key] = job
    return list(merged.values())


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    status = 0
    for job in _jobs(args, parser):
        if args.check:
            problems = check_cache(job.videos, job.cache_dir, stride=job.stride, short_side=job.short_side)
            print(f"{job.cache_dir}: {len(job.videos) - len(problems)} of {len(job.videos)} entries fresh")
            for problem in problems:
                print(f"  - {problem}")
            status |= int(bool(problems))
            continue
        spec = CacheSpec(stride=job.stride, short_side=job.short_side, format=args.format, jpeg_quality=args.quality)
        report = build_cache(
            job.videos, job.cache_dir, spec, workers=args.workers, force=args.force, with_hash=args.hash
        )
        per_frame = report.bytes_on_disk / max(1, report.frames) if report.built and not report.skipped else None
        print(
            f"{job.cache_dir} ({job.split}): {len(job.videos)} videos, {len(report.built)} built "
            f"({report.frames} frames), {len(report.skipped)} fresh; {report.bytes_on_disk / 2**30:.2f} GiB on disk"
            + (f" ({per_frame / 1024:.1f} KiB/frame)" if per_frame else "") + f"; {report.seconds:.1f} s"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
