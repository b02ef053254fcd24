"""Estimate the time and disk of a full synthetic generation from a few videos.

Plans the whole dataset (cheap), writes a sample of its videos (those at
evenly spaced length quantiles) into a temporary folder in this process,
measures CPU seconds and bytes per frame, and extrapolates to all frames.

Example:
    python tools/prepare_data/synthetic/estimate.py --preset thumos --sample 4
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

from opentad.datasets.synthetic import PRESETS, settings_from_preset, write_video_files
from opentad.datasets.synthetic.plan import plan_dataset


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="thumos", choices=sorted(PRESETS))
    parser.add_argument("--sample", type=int, default=4, help="videos to generate (default: %(default)s)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 16], help="worker counts to extrapolate to")
    args = parser.parse_args(argv)

    settings = settings_from_preset(args.preset)
    plans = plan_dataset(settings)
    by_length = sorted(plans, key=lambda p: p.num_frames)
    sample = [by_length[int((i + 0.5) * len(plans) / args.sample)] for i in range(args.sample)]
    sizes = {"video": 0, "features": 0}
    cpu = 0.0
    with tempfile.TemporaryDirectory() as out:
        for plan in sample:
            began = time.process_time()
            written = write_video_files(out, settings, plan)
            cpu += time.process_time() - began
            for name in written:
                sizes["video" if name.endswith(".mp4") else "features"] += os.path.getsize(os.path.join(out, name))
    sample_frames = sum(p.num_frames for p in sample)
    total_frames = sum(p.num_frames for p in plans)
    scale = total_frames / sample_frames
    hours = total_frames / 30 / 3600
    print(f"preset {args.preset}: {len(plans)} videos, {total_frames} frames ({hours:.1f} h of video)")
    per_frame = 1000 * cpu / sample_frames
    print(f"sample: {len(sample)} videos, {sample_frames} frames, {cpu:.1f} CPU s = {per_frame:.2f} ms/frame")
    cpu_name = platform.processor() or platform.machine()
    print(f"machine: {cpu_name}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    total = cpu * scale
    per_workers = ", ".join(f"{w} workers ~{total / w / 60:.1f} min" for w in args.workers)
    print(f"estimated CPU: {total:.0f} s ({total / 3600:.2f} h); {per_workers}")
    video_mib, feature_mib = sizes["video"] * scale / 2**20, sizes["features"] * scale / 2**20
    print(f"estimated disk: videos {video_mib:.0f} MiB, features {feature_mib:.0f} MiB")

if __name__ == "__main__":
    main()
