"""Synthetic videos rendered straight into a frame cache: end-to-end training data without PyAV.

:func:`opentad.datasets.synthetic.generate_dataset` encodes each video to
H.264 and training decodes it again, both through PyAV. Where PyAV is not
installed (or decoding would be the bottleneck), :func:`render_frame_cache`
writes, for each planned video, the frame-cache entry that
``tools/prepare_data/cache_frames.py`` would build from its mp4
(:mod:`opentad.datasets.frame_cache`): every ``stride``-th frame, resized to
``short_side`` with the pipeline's own ``Resize``, as ``npy``. The frames are
the renderer's, so they are what the mp4 holds before H.264's loss. The
manifest's ``source`` names the synthetic settings instead of a file, so
``LoadCachedFrames`` must read these entries with ``check_source=False``.

:func:`repeat_entries` lists every training video several times under new
names (hard links to the same cache files): an epoch of a few rendered
videos then has as many iterations as needed, e.g. for benchmarks where
per-epoch costs (checkpoints) would otherwise dominate.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from opentad.datasets.frame_cache.manifest import (
    FORMAT_VERSION,
    CacheError,
    load_manifest,
    manifest_path,
    write_manifest,
)
from opentad.datasets.frame_cache.shards import NpyWriter
from opentad.datasets.synthetic.generate import ANNOTATION_FILE
from opentad.datasets.synthetic.plan import VideoPlan, plan_dataset
from opentad.datasets.synthetic.render import VideoRenderer
from opentad.datasets.synthetic.settings import FPS, SyntheticSettings

__all__ = ["render_cache_entry", "render_frame_cache", "repeat_entries"]

logger = logging.getLogger(__name__)

_CHUNK = 64  # frames rendered and resized at a time


def _source(plan: VideoPlan, settings: SyntheticSettings) -> Dict[str, Any]:
    return {"path": f"synthetic:{plan.name}", "size": 0, "mtime_ns": 0, "settings_hash": settings.digest()}


def _is_fresh(cache_dir: str, plan: VideoPlan, settings: SyntheticSettings, stride: int, short_side) -> bool:
    try:
        manifest = load_manifest(cache_dir, plan.name)
    except CacheError:  # missing or unreadable: rebuild
        return False
    same = (
        manifest.get("format_version") == FORMAT_VERSION and manifest.get("source") == _source(plan, settings)
        and manifest.get("stride") == stride and manifest.get("short_side") == short_side
    )
    files = manifest.get("files", {})
    return same and all(
        os.path.isfile(os.path.join(cache_dir, n)) and os.path.getsize(os.path.join(cache_dir, n)) == s
        for n, s in files.items()
    )


def render_cache_entry(
    plan: VideoPlan, settings: SyntheticSettings, cache_dir: str, *, stride: int = 4, short_side: Optional[int] = 182
) -> Dict[str, Any]:
    """Render one planned video's frames ``0, stride, 2 * stride, ...`` into an ``npy`` cache entry.

    Args:
        plan: the video (from :func:`~opentad.datasets.synthetic.plan.plan_dataset`).
        settings: the dataset settings the plan was made with.
        cache_dir: the cache folder (created if missing).
        stride: keep every ``stride``-th frame (``snippet_stride // scale_factor`` of the pipeline).
        short_side: resize as ``Resize(scale=(-1, short_side))``; None keeps the rendered size.

    Returns:
        The entry's manifest (the layout of :mod:`opentad.datasets.frame_cache.manifest`).

    Raises:
        ValueError: ``stride`` < 1 or ``short_side`` < 1.
    """
    from opentad.transforms.end_to_end import Resize

    if stride < 1 or (short_side is not None and short_side < 1):
        raise ValueError(
            f"render_cache_entry: need stride >= 1 and short_side >= 1 or None, got {stride}, {short_side}"
        )
    os.makedirs(cache_dir, exist_ok=True)
    if os.path.exists(manifest_path(cache_dir, plan.name)):
        os.remove(manifest_path(cache_dir, plan.name))  # an interrupted rewrite must not look complete
    renderer = VideoRenderer(plan, settings)
    resize = Resize(scale=(-1, short_side)) if short_side is not None else None
    wanted = np.arange(0, plan.num_frames, stride)
    writer, size = None, None
    for start in range(0, len(wanted), _CHUNK):
        hwc = np.stack([renderer.frame(int(f)) for f in wanted[start:start + _CHUNK]])
        frames = torch.from_numpy(hwc).permute(0, 3, 1, 2).contiguous()  # uint8 [K, 3, H, W]
        if resize is not None:
            frames = resize({"imgs": frames})["imgs"]
        if writer is None:
            size = (int(frames.shape[-2]), int(frames.shape[-1]))
            writer = NpyWriter(cache_dir, plan.name, len(wanted), size)
        writer.write(frames)
    manifest = dict(
        format_version=FORMAT_VERSION, video_name=plan.name, source=_source(plan, settings), stride=int(stride),
        short_side=short_side, height=size[0], width=size[1], source_height=settings.height,
        source_width=settings.width, total_frames=plan.num_frames, num_frames=len(wanted), fps=float(FPS),
        format="npy", jpeg_quality=None, files=writer.close(),
    )
    write_manifest(cache_dir, manifest)
    return manifest


def _render_job(job: Tuple[VideoPlan, SyntheticSettings, str, int, Optional[int]]) -> str:
    plan, settings, cache_dir, stride, short_side = job
    torch.set_num_threads(1)
    render_cache_entry(plan, settings, cache_dir, stride=stride, short_side=short_side)
    return plan.name


def render_frame_cache(
    settings: SyntheticSettings,
    cache_dir: str,
    *,
    stride: int = 4,
    short_side: Optional[int] = 182,
    subsets: Sequence[str] = ("validation", "test"),
    workers: int = 1,
) -> Dict[str, List[str]]:
    """Render the cache entries of every planned video of ``subsets``, skipping fresh ones.

    An entry is fresh when its manifest names the same settings hash, stride
    and short side and its files have the recorded sizes.

    Args:
        settings: the dataset (the annotations come from ``generate_dataset`` with the same settings).
        cache_dir: the cache folder.
        stride, short_side: see :func:`render_cache_entry`.
        subsets: ``"validation"`` (training videos) and/or ``"test"``.
        workers: rendering processes.

    Returns:
        ``{"built": [...], "fresh": [...]}`` video names.

    Raises:
        ValueError: an unknown subset (lists the valid ones).
    """
    bad = [s for s in subsets if s not in ("validation", "test")]
    if bad:
        raise ValueError(f"render_frame_cache: unknown subset(s) {bad}; valid: ['validation', 'test']")
    plans = [p for p in plan_dataset(settings) if p.subset in subsets]
    todo = [p for p in plans if not _is_fresh(cache_dir, p, settings, stride, short_side)]
    jobs = [(p, settings, cache_dir, stride, short_side) for p in todo]
    if workers <= 1 or len(jobs) <= 1:
        built = [_render_job(job) for job in jobs]
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(min(workers, len(jobs))) as pool:
            built = list(pool.imap_unordered(_render_job, jobs))
    logger.info("Rendered %d cache entries into %s (%d fresh).", len(built), cache_dir, len(plans) - len(todo))
    return {"built": sorted(built), "fresh": sorted(p.name for p in plans if p not in todo)}


def _link_or_copy(src: str, dst: str) -> None:
    if os.path.exists(dst):
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def repeat_entries(dataset_dir: str, cache_dir: str, *, repeat: int, subset: str = "validation") -> str:
    """Write ``annotations/thumos_14_anno_x{repeat}.json`` listing each ``subset`` video ``repeat`` times.

    Copy ``k`` (1 to ``repeat - 1``) of video ``v`` is ``{v}_rep{k}``, with the same annotation and a
    cache entry whose files are hard links to (or copies of) ``v``'s. Other subsets are kept as they are.

    Args:
        dataset_dir: the synthetic dataset folder (its ``annotations/thumos_14_anno.json``).
        cache_dir: the cache holding an entry for every ``subset`` video.
        repeat: how many times each video is listed, >= 1.
        subset: the subset to repeat.

    Returns:
        The path of the written annotation file.

    Raises:
        ValueError: ``repeat`` < 1.
        CacheError: a video of ``subset`` has no complete cache entry.
    """
    if repeat < 1:
        raise ValueError(f"repeat_entries: repeat must be >= 1, got {repeat}")
    with open(os.path.join(dataset_dir, ANNOTATION_FILE), encoding="utf8") as f:
        database = json.load(f)["database"]
    out: Dict[str, Any] = {}
    for name, info in database.items():
        out[name] = info
        if info["subset"] != subset:
            continue
        manifest = load_manifest(cache_dir, name)
        for k in range(1, repeat):
            copy_name = f"{name}_rep{k}"
            files = {}
            for file_name, size in manifest["files"].items():
                new_name = copy_name + file_name[len(name):]
                _link_or_copy(os.path.join(cache_dir, file_name), os.path.join(cache_dir, new_name))
                files[new_name] = size
            write_manifest(cache_dir, dict(manifest, video_name=copy_name, files=files))
            out[copy_name] = info
    path = os.path.join(dataset_dir, f"{os.path.splitext(ANNOTATION_FILE)[0]}_x{repeat}.json")
    with open(path, "w", encoding="utf8") as f:
        json.dump({"database": out}, f, indent=1)
    return path
