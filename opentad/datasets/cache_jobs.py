"""Which videos a config's cached pipelines read, and how they must be cached.

``tools/prepare_data/cache_frames.py CONFIG`` uses this: for every dataset
split whose pipeline starts with ``LoadCachedFrames``, the dataset is built
(so the block list and the videos without ground truth are left out as in
training) and each video is paired with the cache folder, stride
(``snippet_stride // scale_factor``) and short side the transform expects.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from .builder import build_dataset
from .transforms.cached_frames import LoadCachedFrames

__all__ = ["CacheJob", "cache_jobs_from_config"]


@dataclass
class CacheJob:
    """One cache folder to fill: where, how, and from which ``(video_name, path)`` pairs."""

    split: str
    cache_dir: str
    stride: int
    short_side: Optional[int]
    videos: List[Tuple[str, str]]


def _cached_step(pipeline: Sequence[Any]) -> Optional[Mapping[str, Any]]:
    for step in pipeline:
        if isinstance(step, Mapping) and step.get("type") == "LoadCachedFrames":
            return step
    return None


def cache_jobs_from_config(cfg: Mapping[str, Any], splits: Sequence[str] = ("train", "val", "test")) -> List[CacheJob]:
    """The cache jobs of the config's dataset splits that read ``LoadCachedFrames``.

    Args:
        cfg: a loaded config with a ``dataset`` section.
        splits: the splits to look at.

    Raises:
        ValueError: no split uses ``LoadCachedFrames`` (the message names the splits looked at).
    """
    jobs = []
    for split in splits:
        if split not in cfg["dataset"]:
            continue
        split_cfg = cfg["dataset"][split]
        step = _cached_step(split_cfg["pipeline"])
        if step is None:
            continue
        dataset = build_dataset(split_cfg)
        transform = next(t for t in dataset.pipeline.transforms if isinstance(t, LoadCachedFrames))
        stride = dataset.snippet_stride // transform.scale_factor
        names = sorted({sample[0] for sample in dataset.data_list})
        videos = [(n, os.path.join(dataset.data_path, f"{transform.prefix}{n}.{transform.format}")) for n in names]
        jobs.append(CacheJob(split, transform.cache_dir, stride, transform.short_side, videos))
    if not jobs:
        raise ValueError(f"No dataset split among {list(splits)} reads LoadCachedFrames; nothing to cache")
    return jobs
