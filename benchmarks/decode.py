"""Measure video decoders for the end-to-end (AdaTAD) data pipeline.

For each candidate decoder (PyAV through opentad's ``VideoReader``, plain
PyAV, decord, OpenCV, torchcodec; those not installed are skipped) this
reports RGB frames delivered per CPU-second on one thread, for two access
patterns:

* sequential: every frame of the video, in order;
* window: AdaTAD's training access, a random window of ``--window`` frames
  at stride ``--stride`` (768 x 4 = 3072 consecutive frames spanned), the
  file opened afresh for each window as the pipeline does.

It also checks each decoder against a plain PyAV decode of the same frames
(mean absolute pixel difference), so a fast but wrong decoder shows.

Videos come from ``--videos DIR`` (``*.mp4``) or are made with
``--make-videos DIR`` (synthetic H.264, ``--size``, 30 fps).

Example::

    OMP_NUM_THREADS=1 python tools/benchmark_decode.py --make-videos /tmp/decode_videos \\
        --num-videos 2 --seconds 150 --size 320x180 --windows 4

``--pipeline-samples N`` also times every step of the THUMOS AdaTAD training
pipeline (768 frames, 160x160 crops) on N samples; ``--backends ""`` skips
the decoder table.

Decoders outside the project environment can be put on ``PYTHONPATH``
(``pip install --target /tmp/decoders decord torchcodec``).
"""
from __future__ import annotations

import argparse
import glob
import os
import platform
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from benchmarks.decoders import BACKENDS, opentad_backend, pyav_backend

os.environ.setdefault("OMP_NUM_THREADS", "1")


def make_videos(out_dir: str, num: int, seconds: float, size: Tuple[int, int], seed: int = 0) -> List[str]:
    """Write ``num`` synthetic H.264 videos (moving shapes over a textured background)."""
    import av

    os.makedirs(out_dir, exist_ok=True)
    w, h = size
    rng = np.random.default_rng(seed)
    paths = []
    for v in range(num):
        path = os.path.join(out_dir, f"synthetic_{w}x{h}_{v}.mp4")
        paths.append(path)
        if os.path.isfile(path):
            continue
        texture = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        yy, xx = np.mgrid[0:h, 0:w]
        container = av.open(path, "w")
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        n = int(seconds * 30)
        for i in tqdm(range(n), desc=f"encode {os.path.basename(path)}"):
            scene = (i // 300) % 4  # a cut every 10 s
            img = np.roll(texture, shift=(i + scene * 37) % w, axis=1) // 2
            img[..., scene % 3] += (64 + 63 * np.sin((xx + 2 * i) / 23.0 + yy / 17.0)).astype(np.uint8)
            cx, cy = int((i * 3) % w), int(h / 2 + h / 3 * np.sin(i / 30.0))
            img[max(cy - 15, 0) : cy + 15, max(cx - 20, 0) : cx + 20] = (255, 255 - scene * 60, 40)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        container.close()
    return paths


def _timed(fn, *args):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    return out, time.process_time() - c0, time.perf_counter() - w0


def _windows(total: int, window: int, stride: int, num: int, rng: np.random.Generator) -> List[np.ndarray]:
    span = window * stride
    return [rng.integers(0, max(total - span, 0) + 1) + stride * np.arange(window) for _ in range(num)]


def time_decoders(paths: Sequence[str], names: Sequence[str], window: int, stride: int, num_windows: int) -> List[Dict]:
    """Time every backend in ``names`` on ``paths``; returns one row per backend."""
    counter = opentad_backend()[0]
    totals = {p: counter(p) for p in paths}
    rng = np.random.default_rng(0)
    plans = {p: [w[w < totals[p]] for w in _windows(totals[p], window, stride, num_windows, rng)] for p in paths}
    # reference frames from a plain PyAV decode: every 7th frame and every window's frames
    keep = {p: set(range(0, totals[p], 7)).union(*[set(w.tolist()) for w in plans[p]]) for p in paths}
    reference = {p: pyav_backend()[1](p, keep[p])[1] for p in paths}
    rows = []
    for name in names:
        try:
            _, sequential, batch = BACKENDS[name]()
        except Exception as exc:  # not installed, or its libraries do not load
            rows.append(dict(name=name, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"))
            continue
        row = dict(name=name, seq_frames=0, seq_cpu=0.0, seq_wall=0.0, win_frames=0, win_cpu=0.0, win_wall=0.0, n_win=0)
        diffs = []
        for p in tqdm(paths, desc=name):
            (count, kept), cpu, wall = _timed(sequential, p, set(range(0, totals[p], 7)))
            row["seq_frames"] += count
            row["seq_cpu"] += cpu
            row["seq_wall"] += wall
            if count != totals[p]:
                row["count_mismatch"] = f"{count} frames, expected {totals[p]}"
            ks = sorted(kept)
            diffs.append(_diff(np.stack([kept[k] for k in ks]), reference[p], ks) if ks else float("inf"))
            for idx in plans[p]:
                frames, cpu, wall = _timed(batch, p, idx)
                row["win_frames"] += len(frames)
                row["win_cpu"] += cpu
                row["win_wall"] += wall
                row["n_win"] += 1
                diffs.append(_diff(frames, reference[p], idx))
        row["diff"] = float(np.max(diffs))
        rows.append(row)
    return rows


def _diff(frames: np.ndarray, reference: Dict[int, np.ndarray], idx: Sequence[int]) -> float:
    if len(frames) != len(idx) or any(int(i) not in reference for i in idx):
        return float("inf")
    ref = np.stack([reference[int(i)] for i in idx])
    return float(np.abs(frames.astype(np.int16) - ref.astype(np.int16)).mean())


def format_table(rows: List[Dict], window: int, stride: int) -> str:
    lines = [
        f"| decoder | sequential frames/CPU-s | window {window}x{stride}: frames/CPU-s | ms/window (CPU) "
        "| ms/window (wall) | mean abs diff vs PyAV |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | not available: {r['error']} | | | | |")
            continue
        note = f" ({r['count_mismatch']})" if "count_mismatch" in r else ""
        lines.append(
            f"| {r['name']} | {r['seq_frames'] / r['seq_cpu']:.0f} | {r['win_frames'] / r['win_cpu']:.0f} "
            f"| {1000 * r['win_cpu'] / r['n_win']:.0f} | {1000 * r['win_wall'] / r['n_win']:.0f} "
            f"| {r['diff']:.3f}{note} |"
        )
    return "\n".join(lines)


# The THUMOS AdaTAD training pipeline (configs/adatad/thumos/*_768x1_160_*), one thread.
ADATAD_TRAIN_PIPELINE = [
    dict(type="PrepareVideoInfo", format="mp4"),
    dict(type="mmaction.DecordInit", num_threads=1),
    dict(type="LoadFrames", num_clips=1, method="random_trunc", trunc_len=768, trunc_thresh=0.75,
         crop_ratio=[0.9, 1.0], scale_factor=1),
    dict(type="mmaction.DecordDecode"),
    dict(type="mmaction.Resize", scale=(-1, 182)),
    dict(type="mmaction.RandomResizedCrop"),
    dict(type="mmaction.Resize", scale=(160, 160), keep_ratio=False),
    dict(type="mmaction.Flip", flip_ratio=0.5),
    dict(type="mmaction.ImgAug", transforms="default"),
    dict(type="mmaction.ColorJitter"),
    dict(type="mmaction.FormatShape", input_format="NCTHW"),
    dict(type="ConvertToTensor", keys=["imgs", "gt_segments", "gt_labels"]),
    dict(type="Collect", inputs="imgs", keys=["masks", "gt_segments", "gt_labels"]),
]


def time_pipeline(paths: Sequence[str], samples: int) -> str:
    """Mean CPU seconds per transform of :data:`ADATAD_TRAIN_PIPELINE`, as a markdown table."""
    import torch

    from opentad.transforms import Compose

    torch.set_num_threads(1)
    torch.manual_seed(0)
    pipe = Compose(ADATAD_TRAIN_PIPELINE)
    names = [repr(t).split("(")[0] for t in pipe.transforms]
    cost = np.zeros(len(names))
    for k in tqdm(range(samples), desc="pipeline"):
        path = paths[k % len(paths)]
        results = dict(video_name=os.path.splitext(os.path.basename(path))[0], data_path=os.path.dirname(path),
                       snippet_stride=4, fps=30.0, gt_segments=np.array([[100.0, 300.0], [500.0, 900.0]], np.float32),
                       gt_labels=np.array([0, 1]))
        for i, transform in enumerate(pipe.transforms):
            results, cpu, _ = _timed(transform, results)
            cost[i] += cpu
    rows = [f"| {n} | {1000 * c / samples:.0f} |" for n, c in zip(names, cost) if c / samples >= 0.005]
    total = f"| **total** | **{1000 * cost.sum() / samples:.0f}** |"
    return "\n".join(["| transform | CPU ms per sample |", "| --- | ---: |"] + rows + [total])


def run(args: argparse.Namespace) -> None:
    """Time the decoders (and the pipeline) for the tool's ``args``; prints the tables.

    Raises:
        SystemExit: ``--videos`` holds no ``*.mp4``.
    """
    if args.make_videos:
        w, h = (int(x) for x in args.size.lower().split("x"))
        paths = make_videos(args.make_videos, args.num_videos, args.seconds, (w, h))
    else:
        paths = sorted(glob.glob(os.path.join(args.videos, "*.mp4")))
        if not paths:
            raise SystemExit(f"error: --videos {args.videos}: no *.mp4 files there")
    names = [n for n in args.backends.split(",") if n]
    rows = time_decoders(paths, names, args.window, args.stride, args.windows) if names else []
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"videos: {len(paths)} ({', '.join(os.path.basename(p) for p in paths)})")
    if rows:
        print(format_table(rows, args.window, args.stride))
    if args.pipeline_samples:
        print(time_pipeline(paths, args.pipeline_samples))

