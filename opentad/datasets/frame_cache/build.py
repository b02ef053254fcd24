"""Building the frame cache: decode each video once, keep every ``stride``-th frame, resize, store.

Frames are decoded with the pipeline's own reader
(:class:`~opentad.datasets.video_reader.VideoReader`) and resized
with its own ``Resize(scale=(-1, short_side))``, so an ``npy`` entry holds
exactly the frames the raw-video pipeline (``VideoDecode`` then
``mmaction.Resize``) produces. ``tools/prepare_data/cache_frames.py`` is the
command line.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from opentad.datasets.video_reader import VideoReader
from opentad.transforms.end_to_end import Resize

from .manifest import FORMAT_VERSION, CacheError, CacheSpec, check_entry, load_manifest, manifest_path
from .manifest import source_signature, write_manifest
from .shards import open_writer

__all__ = ["BuildReport", "cache_video", "entry_is_fresh", "build_cache", "check_cache"]

logger = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What :func:`build_cache` did.

    Attributes:
        built, skipped: video names written, and found fresh and left alone.
        frames: frames stored by this run.
        bytes_on_disk: size of every entry of the list (built or skipped).
        seconds: wall time.
    """

    built: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    frames: int = 0
    bytes_on_disk: int = 0
    seconds: float = 0.0


def cache_video(
    video_path: str,
    video_name: str,
    cache_dir: str,
    spec: CacheSpec,
    *,
    with_hash: bool = False,
    chunk_size: int = 128,
) -> Dict[str, Any]:
    """Cache one video; returns its manifest.

    The old manifest is removed first and the new one written last, so an
    interrupted run leaves an entry that readers reject as incomplete.

    Args:
        video_path: the video file.
        video_name: the entry's name (the annotation's video name).
        cache_dir: output folder (created if missing).
        spec: stride, resolution and format.
        with_hash: also store the SHA-256 of the video in the manifest.
        chunk_size: frames decoded and resized at a time (bounds memory).

    Raises:
        FileNotFoundError, VideoReadError: the video cannot be read (names the file).
    """
    os.makedirs(cache_dir, exist_ok=True)
    if os.path.exists(manifest_path(cache_dir, video_name)):
        os.remove(manifest_path(cache_dir, video_name))
    source = source_signature(video_path, with_hash=with_hash)
    resize = Resize(scale=(-1, spec.short_side)) if spec.short_side is not None else None
    with VideoReader(video_path) as reader:
        total = len(reader)
        wanted = np.arange(0, total, spec.stride)
        writer, size = None, None
        for start in range(0, len(wanted), chunk_size):
            frames = reader.get_batch(wanted[start : start + chunk_size])
            if resize is not None:
                frames = resize({"imgs": frames})["imgs"]
            if writer is None:
                size = (int(frames.shape[-2]), int(frames.shape[-1]))
                writer = open_writer(spec.format, cache_dir, video_name, len(wanted), size, spec.jpeg_quality)
            writer.write(frames)
        files = writer.close()
        manifest = dict(
            format_version=FORMAT_VERSION, video_name=video_name, source=source, stride=int(spec.stride),
            short_side=spec.short_side, height=size[0], width=size[1], source_height=reader.height,
            source_width=reader.width, total_frames=total, num_frames=len(wanted), fps=reader.avg_fps,
            format=spec.format, jpeg_quality=int(spec.jpeg_quality) if spec.format == "jpeg" else None, files=files,
        )
    write_manifest(cache_dir, manifest)
    return manifest


def entry_is_fresh(video_path: str, video_name: str, cache_dir: str, spec: CacheSpec) -> bool:
    """True if the entry exists, is complete, matches ``spec`` and its source is unchanged."""
    try:
        manifest = load_manifest(cache_dir, video_name)
        check_entry(manifest, cache_dir, stride=spec.stride, short_side=spec.short_side, source_path=video_path)
    except (CacheError, FileNotFoundError, KeyError):
        return False
    same_quality = spec.format != "jpeg" or manifest.get("jpeg_quality") == spec.jpeg_quality
    return manifest.get("format") == spec.format and same_quality


def _entry_bytes(cache_dir: str, video_name: str) -> int:
    manifest = load_manifest(cache_dir, video_name)
    return int(sum(manifest["files"].values())) + os.path.getsize(manifest_path(cache_dir, video_name))


def _worker_init() -> None:
    torch.set_num_threads(1)


def _cache_job(job: Tuple[str, str, str, CacheSpec, bool]) -> Tuple[str, int]:
    video_path, video_name, cache_dir, spec, with_hash = job
    manifest = cache_video(video_path, video_name, cache_dir, spec, with_hash=with_hash)
    return video_name, int(manifest["num_frames"])


def build_cache(
    videos: Sequence[Tuple[str, str]],
    cache_dir: str,
    spec: CacheSpec,
    *,
    workers: int = 1,
    force: bool = False,
    with_hash: bool = False,
) -> BuildReport:
    """Cache ``videos`` (``(video_name, path)`` pairs), skipping fresh entries unless ``force``.

    Videos are processed longest (largest file) first, in ``workers``
    processes, with a progress bar.

    Raises:
        FileNotFoundError: a video file does not exist (names it).
    """
    from tqdm import tqdm

    start = time.perf_counter()
    missing = [path for _, path in videos if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} video(s) to cache not found, e.g. {missing[:3]}")
    report = BuildReport()
    todo = []
    for name, path in videos:
        if not force and entry_is_fresh(path, name, cache_dir, spec):
            report.skipped.append(name)
        else:
            todo.append((path, name, cache_dir, spec, with_hash))
    todo.sort(key=lambda job: -os.path.getsize(job[0]))
    progress = dict(total=len(todo), desc="cache frames", unit="video", disable=not todo)
    if workers <= 1 or len(todo) <= 1:
        results = (_cache_job(job) for job in todo)
        for name, frames in tqdm(results, **progress):
            report.built.append(name)
            report.frames += frames
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(min(workers, len(todo)), initializer=_worker_init) as pool:
            for name, frames in tqdm(pool.imap_unordered(_cache_job, todo), **progress):
                report.built.append(name)
                report.frames += frames
    report.bytes_on_disk = sum(_entry_bytes(cache_dir, name) for name, _ in videos)
    report.seconds = time.perf_counter() - start
    logger.info(
        "frame cache %s: %d built (%d frames), %d fresh, %.2f GiB, %.1f s",
        cache_dir, len(report.built), report.frames, len(report.skipped), report.bytes_on_disk / 2**30, report.seconds,
    )
    return report


def check_cache(
    videos: Sequence[Tuple[str, str]], cache_dir: str, *, stride: Optional[int], short_side: Any = "any"
) -> List[str]:
    """One message per missing, incomplete or stale entry of ``videos`` (empty if all are fresh)."""
    problems = []
    for name, path in videos:
        try:
            manifest = load_manifest(cache_dir, name)
            check_entry(manifest, cache_dir, stride=stride, short_side=short_side, source_path=path)
        except (CacheError, FileNotFoundError) as exc:
            problems.append(str(exc))
    return problems
