"""Generate the synthetic THUMOS-format dataset (the project's default data).

Examples:
    python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
    python tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos-full --preset thumos --workers 16

Rerunning with the same arguments on a complete output returns at once.
See docs/synthetic_data.md for what is generated.
"""
from __future__ import annotations

import argparse
import logging
import os

from opentad.datasets.synthetic import PRESETS, generate_dataset, settings_from_preset


def _size(text: str):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 96x96 (WIDTHxHEIGHT), got {text!r}") from None
    return width, height


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder, e.g. data/synthetic-thumos")
    parser.add_argument(
        "--preset", default="default", choices=sorted(PRESETS), help="base settings (default: %(default)s)"
    )
    parser.add_argument(
        "--workers", type=int, default=min(4, os.cpu_count() or 1), help="parallel processes (default: %(default)s)"
    )
    parser.add_argument("--force", action="store_true", help="regenerate everything; allow a folder without manifest")
    group = parser.add_argument_group("settings (override the preset; see SyntheticSettings)")
    group.add_argument("--seed", type=int)
    group.add_argument("--num-train", type=int, help="videos in the 'validation' subset (used for training)")
    group.add_argument("--num-test", type=int, help="videos in the 'test' subset")
    group.add_argument("--num-classes", type=int, help="first N THUMOS14 classes (1-20)")
    group.add_argument("--size", type=_size, help="frame size WIDTHxHEIGHT, both even")
    group.add_argument("--min-duration", type=float, help="shortest video, seconds")
    group.add_argument("--max-duration", type=float, help="longest video, seconds")
    group.add_argument("--median-duration", type=float, help="median video length, seconds")
    group.add_argument("--actions-per-minute", type=float)
    group.add_argument("--max-distractors", type=int)
    group.add_argument("--feat-dim", type=int, help="feature channels C")
    group.add_argument("--feat-noise", type=float, help="feature noise std per channel")
    group.add_argument("--pixel-noise", type=float, help="pixel noise std (0-255)")
    group.add_argument("--crf", type=int, help="x264 constant rate factor")
    group.add_argument("--no-videos", action="store_true", help="write annotations and features only")
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {
        key: getattr(args, key)
        for key in (
            "seed",
            "num_train",
            "num_test",
            "num_classes",
            "min_duration",
            "max_duration",
            "median_duration",
            "actions_per_minute",
            "max_distractors",
            "feat_dim",
            "feat_noise",
            "pixel_noise",
            "crf",
        )
    }
    if args.size is not None:
        overrides["width"], overrides["height"] = args.size
    if args.no_videos:
        overrides["write_videos"] = False
    try:
        settings = settings_from_preset(args.preset, overrides)
    except (ValueError, KeyError, TypeError) as exc:
        parser.error(str(exc))
    report = generate_dataset(settings, args.out, workers=args.workers, force=args.force)
    state = "already complete" if report.skipped else f"wrote {report.num_written} video(s)"
    print(
        f"{report.out}: {state}; {report.num_videos} videos, {report.num_actions} actions, "
        f"{report.total_frames} frames, {report.bytes_on_disk / 2**20:.1f} MiB, {report.seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
