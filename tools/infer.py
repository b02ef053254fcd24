"""Detect actions in video files with a trained detector (one plain process, CPU or GPU).

    python tools/infer.py CONFIG CHECKPOINT VIDEO [VIDEO ...] [--out detections.json] [--plot timeline.png]
        [--score-thresh 0.1] [--topk 50] [--device cpu|cuda] [--features FEATS.npy ...] [--class-map FILE]

Feature-based configs take one --features file per video (same order). The
JSON has upstream's result layout ({"results": {video: [{"segment", "label",
"score"}]}}, seconds) plus each video's probed frame rate and duration; it
goes to stdout without --out. See docs/usage.md, "Inference on your own videos".
"""
import argparse
import json
import logging
import os
import sys

from opentad.apis import USER_ERRORS, Inferencer, plot_timeline
from opentad.utils.config import DictAction
from opentad.utils.logger import setup_logger


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Detect actions in videos with a trained detector")
    parser.add_argument("config", help="the config the checkpoint was trained with")
    parser.add_argument("checkpoint", help="the checkpoint (.pth)")
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video file(s)")
    parser.add_argument("--features", nargs="+", default=None,
                        help="feature files [T, C], one per video (feature configs)")
    parser.add_argument("--out", default=None, help="write the detections JSON here (default: stdout)")
    parser.add_argument("--plot", default=None, help="write a PNG timeline (one video) or PATH_<video>.png (several)")
    parser.add_argument("--score-thresh", type=float, default=0.0, help="drop detections below this score")
    parser.add_argument("--topk", type=int, default=None, help="keep this many detections per video")
    parser.add_argument("--top-per-class", type=int, default=5, help="bars per class in the timeline")
    parser.add_argument("--gt-ann", default=None, help="OpenTAD annotation file: draw the video's ground truth too")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--class-map", default=None, help="class names, one per line (default: the config's)")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per forward (default: solver.test)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default=None, help="override config keys")
    parser.add_argument("--verbose", action="store_true", help="log progress and model building")
    parser.add_argument("--debug", action="store_true", help="show the full stack trace on errors")
    return parser.parse_args(argv)


def plot_path(plot: str, name: str, several: bool) -> str:
    if not several:
        return plot
    stem, ext = os.path.splitext(plot)
    return f"{stem}_{name}{ext or '.png'}"


def ground_truth(ann_file, name):
    if ann_file is None:
        return None
    with open(ann_file, "r", encoding="utf8") as handle:
        database = json.load(handle)["database"]
    annotations = database[name]["annotations"] if name in database else []
    return [a for a in annotations if a["label"] != "Ambiguous"]


def run(args) -> dict:
    if args.features is not None and len(args.features) != len(args.videos):
        raise ValueError(f"{len(args.videos)} video(s) but {len(args.features)} --features file(s); give one per video")
    inferencer = Inferencer(
        args.config, args.checkpoint, device=args.device, class_map=args.class_map, cfg_options=args.cfg_options,
        batch_size=args.batch_size, show_progress=args.verbose,
    )
    output = dict(config=args.config, checkpoint=args.checkpoint, results={}, videos={})
    features = args.features or [None] * len(args.videos)
    for video, feats in zip(args.videos, features):
        found = inferencer.detect(video, features=feats, score_thresh=args.score_thresh, topk=args.topk)
        name = found.video.name
        if name in output["results"]:
            raise ValueError(f"two videos are named {name!r}; rename one")
        output["results"][name] = found.detections
        output["videos"][name] = found.video.to_dict()
        if args.plot:
            plot_timeline(
                found.detections, duration=found.video.duration, out=plot_path(args.plot, name, len(args.videos) > 1),
                title=f"{name} ({found.video.duration:.1f} s, {found.video.fps:.2f} fps)",
                top_per_class=args.top_per_class, ground_truth=ground_truth(args.gt_ann, name),
            )
    return output


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logger(None, level=logging.INFO if args.verbose else logging.WARNING)
    try:
        output = run(args)
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.out is None:
        print(json.dumps(output, indent=1))
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf8") as handle:
        json.dump(output, handle, indent=1)
    for name, detections in output["results"].items():
        best = ", ".join(
            f"{d['label']} {d['segment'][0]:.1f}-{d['segment'][1]:.1f}s ({d['score']:.2f})" for d in detections[:3]
        )
        print(f"{name}: {len(detections)} detections{': ' + best if best else ''}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
