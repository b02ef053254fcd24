"""Time tools/infer.py's and tools/extract_features.py's work on a generated video, with random weights.

    python tools/benchmark_infer.py CONFIG [--minutes 3] [--size 320x180] [--fps 30] [--device cuda]
        [--extract] [--batch-size 16] [--cfg-options k=v ...]

Writes a video of moving gradients (H.264) to a temporary folder, builds the
config's detector with random weights (no pretrained file is read) and saves
it as a checkpoint, then times Inferencer construction (model build and
checkpoint load), one detect() over the whole video (decoding included), and
with --extract FeatureExtractor over the same video. Prints one Markdown row
(see docs/benchmarks.md, "Inference and feature extraction").
"""
import argparse
import os
import tempfile
import time

import av
import numpy as np
import torch

from opentad.apis import FeatureExtractor, Inferencer, probe_video
from opentad.registry import DETECTORS, build
from opentad.utils.checkpoint import atomic_save, model_state_dict
from opentad.utils.config import load_config


def write_video(path, seconds, width, height, fps):
    """Moving colour gradients, H.264 (ultrafast), yuv420p."""
    ys, xs = np.mgrid[0:height, 0:width]
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * fps)):
            image = np.stack([(xs + 3 * i) % 256, (ys + 2 * i) % 256, (xs + ys + i) % 256], axis=-1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image.astype(np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def random_checkpoint(config, options, path):
    """The config's detector with random weights (pretrained files left out), saved as a checkpoint."""
    cfg = load_config(config, options)
    model_cfg = cfg.model.to_dict()
    if isinstance(model_cfg.get("backbone"), dict) and "custom" in model_cfg["backbone"]:
        model_cfg["backbone"]["custom"]["pretrain"] = None
    model = build(model_cfg, DETECTORS)
    state = model_state_dict(model)
    atomic_save({"epoch": 0, "state_dict": state, "state_dict_ema": state}, path)
    return int(model.rpn_head.num_classes)


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def run(args: argparse.Namespace) -> None:
    """Generate the video, time loading, detection (and extraction); prints one Markdown row."""
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="bench_infer_") as folder:
        video, ckpt = os.path.join(folder, "bench.mp4"), os.path.join(folder, "model.pth")
        write_video(video, args.minutes * 60, width, height, args.fps)
        info = probe_video(video)
        classes = os.path.join(folder, "classes.txt")
        with open(classes, "w", encoding="utf8") as handle:
            handle.writelines(f"class_{i}\n" for i in range(random_checkpoint(args.config, args.cfg_options, ckpt)))
        inferencer, t_load = timed(lambda: Inferencer(args.config, ckpt, device=args.device, class_map=classes,
                                                      cfg_options=args.cfg_options, show_progress=False))
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        result, t_detect = timed(lambda: inferencer.detect(video))
        memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
        row = [os.path.basename(args.config), str(inferencer.device), f"{info.duration / 60:.1f} min {width}x{height}",
               f"{t_load:.1f}", f"{t_detect:.1f}", f"{info.num_frames / t_detect:.0f}",
               f"{info.duration / t_detect:.1f}x", f"{memory:.2f}",
               str(len(result.detections))]
        if args.extract:
            del inferencer
            extractor = FeatureExtractor(args.config, ckpt, device=args.device, batch_size=args.batch_size,
                                         cfg_options=args.cfg_options)
            feats, t_extract = timed(lambda: extractor.extract(info))
            row += [f"{t_extract:.1f} ({feats.shape[0]}x{feats.shape[1]})"]
    print("| config | device | video | load s | detect s | frames/s | realtime | peak GiB | detections |"
          + (" extract s (T x C) |" if args.extract else ""))
    print("| " + " | ".join(row) + " |")

