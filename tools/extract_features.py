"""Extract snippet features [T, C] with a config's video backbone (AdaTAD, QLoRA-AdaTAD, frozen/full ViT).

    python tools/extract_features.py CONFIG CHECKPOINT|none --videos DIR|VIDEO|LIST --out DIR
        [--snippet-stride 4] [--clip-len 16] [--device cpu|cuda] [--batch-size 16] [--skip-existing] [--skip-bad]

Writes DIR/<video name>.npy, float32 [frames // snippet_stride, C]: row t is
the backbone's pooled output on a clip of clip_len frames centred on frames
[s*t, s*t + s). A feature config reads them with feature_stride=snippet_stride,
sample_stride=1, offset_frames=0. See docs/usage.md, "Extracting features".
"""
import argparse
import logging
import sys

from opentad.apis import USER_ERRORS, FeatureExtractor, extract_features, list_videos
from opentad.utils.config import DictAction
from opentad.utils.logger import setup_logger


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Extract snippet features with a config's video backbone")
    parser.add_argument("config", help="config with an end-to-end backbone")
    parser.add_argument("checkpoint", help="detector checkpoint trained with the config, or 'none' for its pretrain")
    parser.add_argument("--videos", required=True,
                        help="a folder of videos, one video file, or a text file with one video path per line")
    parser.add_argument("--out", required=True, help="output folder for <video name>.npy")
    parser.add_argument("--snippet-stride", type=int, default=4, help="frames per feature row (default 4)")
    parser.add_argument("--clip-len", type=int, default=None, help="frames per clip (default: the ViT's num_frames)")
    parser.add_argument("--frame-interval", type=int, default=1, help="gap between a clip's frames (default 1)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward (default 16)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--skip-existing", action="store_true", help="leave videos whose .npy exists")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip unreadable or too-short videos instead of stopping")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default=None, help="override config keys")
    parser.add_argument("--verbose", action="store_true", help="log model building")
    parser.add_argument("--debug", action="store_true", help="show the full stack trace on errors")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logger(None, level=logging.INFO if args.verbose else logging.WARNING)
    try:
        videos = list_videos(args.videos)
        extractor = FeatureExtractor(
            args.config, None if args.checkpoint.lower() == "none" else args.checkpoint, device=args.device,
            snippet_stride=args.snippet_stride, clip_len=args.clip_len, frame_interval=args.frame_interval,
            batch_size=args.batch_size, cfg_options=args.cfg_options,
        )
        report = extract_features(extractor, videos, args.out, skip_existing=args.skip_existing, skip_bad=args.skip_bad)
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(report.written)} feature file(s) to {args.out}; skipped {len(report.skipped)} existing")
    for video, reason in report.failed.items():
        print(f"failed: {video}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
