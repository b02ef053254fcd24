"""The data of :mod:`benchmarks.loader`: synthetic videos, the three loaders' pipelines, the frame caches.

:func:`pipelines` derives the ``raw``, ``cached-cpu`` and ``cached-gpu``
pipelines from the cached AdaTAD recipe (``benchmarks.loader``'s module
docstring); :func:`train_dataset_cfg` points the recipe's training dataset at
the synthetic data; :func:`make_videos` and :func:`build_caches` make the
videos and their frame caches.
"""
from __future__ import annotations

import copy
import os
import time
from typing import Any, Dict, List

__all__ = ["make_videos", "train_dataset_cfg", "pipelines", "build_caches"]

_LOAD_FRAMES_KEYS = ("num_clips", "scale_factor", "method", "trunc_len", "trunc_thresh", "crop_ratio")


def make_videos(out: str, num: int, seconds: float, size: str, workers: int) -> str:
    from opentad.datasets.synthetic import generate_dataset, settings_from_preset

    width, height = (int(v) for v in size.lower().split("x"))
    overrides = dict(num_train=num, num_test=0, min_duration=seconds, max_duration=seconds, width=width, height=height)
    start = time.perf_counter()
    report = generate_dataset(settings_from_preset("thumos", overrides), out, workers=max(1, workers))
    print(f"videos: {report.num_videos} x {seconds:.0f} s at {size} in {out} ({time.perf_counter() - start:.1f} s)")
    return out


def train_dataset_cfg(cfg, root: str, pipeline: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The config's training dataset on the synthetic data (THUMOS14's training subset is named 'validation')."""
    from opentad.datasets.synthetic import ANNOTATION_FILE, CLASS_FILE, VIDEO_DIR

    ds = copy.deepcopy(cfg["dataset"]["train"].to_dict())
    ds.update(ann_file=os.path.join(root, ANNOTATION_FILE), class_map=os.path.join(root, CLASS_FILE),
              data_path=os.path.join(root, VIDEO_DIR), subset_name="validation", block_list=None, pipeline=pipeline)
    return ds


def pipelines(cfg, cache_dir: str, decode_threads: int) -> Dict[str, List[Dict[str, Any]]]:
    """The three loaders' pipelines, derived from the cached recipe (see the module docstring)."""
    steps = [dict(s) for s in cfg["dataset"]["train"]["pipeline"]]
    if steps[0]["type"] != "LoadCachedFrames":
        raise ValueError(f"{cfg.filename}: the training pipeline must start with LoadCachedFrames")
    load = dict(steps[0], cache_dir=cache_dir)
    augment = [dict(s) for s in cfg["model"]["backbone"]["data_preprocessor"]["augment"]]
    tail = steps[1:]
    raw = [
        dict(type="PrepareVideoInfo", format=load.get("format", "mp4"), prefix=load.get("prefix", "")),
        dict(type="mmaction.DecordInit", num_threads=decode_threads),
        dict(type="LoadFrames", **{k: load[k] for k in _LOAD_FRAMES_KEYS if k in load}),
        dict(type="mmaction.DecordDecode"),
        dict(type="mmaction.Resize", scale=(-1, load.get("short_side", 182))),
    ]
    return {"raw": raw + augment + tail, "cached-cpu": [load] + augment + tail, "cached-gpu": [load] + tail}


def build_caches(cfg, root: str, formats: List[str], workers: int) -> List[Dict[str, Any]]:
    from opentad.datasets import build_dataset
    from opentad.datasets.frame_cache import CacheSpec, build_cache

    probe = build_dataset(train_dataset_cfg(cfg, root, pipelines(cfg, "-", 1)["raw"]))
    load = cfg["dataset"]["train"]["pipeline"][0]
    stride = probe.snippet_stride // load.get("scale_factor", 1)
    videos = sorted({(s[0], os.path.join(probe.data_path, f"{s[0]}.mp4")) for s in probe.data_list})
    rows = []
    for fmt in formats:
        spec = CacheSpec(stride=stride, short_side=load.get("short_side", 182), format=fmt)
        report = build_cache(videos, os.path.join(root, f"frame_cache_{fmt}"), spec, workers=workers, force=True)
        rows.append(dict(format=fmt, videos=len(videos), frames=report.frames, seconds=report.seconds,
                         gib=report.bytes_on_disk / 2**30, kib_per_frame=report.bytes_on_disk / report.frames / 1024))
    return rows
