"""Generate (or bring up to date) a synthetic THUMOS-format dataset on disk.

Layout under ``out`` (see ``docs/synthetic_data.md``)::

    annotations/thumos_14_anno.json     {"database": {name: {subset, duration, frame, annotations}}}
    annotations/category_idx.txt        one class name per line
    classifiers/video_classifier.json   {"class": [names], "results": {name: [scores]}} (StandardClassifier)
    raw_data/video/<name>.mp4           H.264, yuv420p, 30 fps
    features/stride4/<name>.npy         float32 [frame // 4, feat_dim]
    synthetic_manifest.json             settings, their hash, the files and their sizes

Reruns are cheap: when the manifest says "complete" for the same settings
hash and every listed file exists with its size, nothing is done. When the
hash matches but the run had stopped (manifest not complete), only missing
files are made. When the hash differs, the previous generator outputs are
deleted first. A folder that holds data but no manifest is refused unless
``force`` is set, so real data is never overwritten by mistake.
"""
from __future__ import annotations

import glob
import json
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from opentad.datasets.synthetic.classifier import classifier_file
from opentad.datasets.synthetic.features import video_features
from opentad.datasets.synthetic.plan import VideoPlan, plan_dataset
from opentad.datasets.synthetic.render import VideoRenderer
from opentad.datasets.synthetic.settings import FPS, SyntheticSettings
from opentad.datasets.synthetic.writer import PARTIAL_MARK, write_mp4, write_npy, write_text

__all__ = [
    "ANNOTATION_FILE",
    "CLASS_FILE",
    "CLASSIFIER_FILE",
    "VIDEO_DIR",
    "FEATURE_DIR",
    "MANIFEST_FILE",
    "GenerationReport",
    "generate_dataset",
    "write_video_files",
]

logger = logging.getLogger(__name__)

ANNOTATION_FILE = "annotations/thumos_14_anno.json"
CLASS_FILE = "annotations/category_idx.txt"
CLASSIFIER_FILE = "classifiers/video_classifier.json"
VIDEO_DIR = "raw_data/video"
FEATURE_DIR = "features/stride4"
MANIFEST_FILE = "synthetic_manifest.json"


@dataclass(frozen=True)
class GenerationReport:
    """What :func:`generate_dataset` did.

    Attributes:
        out: the dataset folder.
        skipped: True when the folder was already complete for these settings.
        num_videos: videos in the dataset.
        num_written: videos (or feature files) written by this call.
        num_actions: annotated actions, ``Ambiguous`` excluded.
        total_frames: frames of all videos.
        bytes_on_disk: size of all files listed in the manifest.
        seconds: wall time of the call.
    """

    out: str
    skipped: bool
    num_videos: int
    num_written: int
    num_actions: int
    total_frames: int
    bytes_on_disk: int
    seconds: float


def _outputs(settings: SyntheticSettings, plan: VideoPlan) -> List[str]:
    names = [f"{FEATURE_DIR}/{plan.name}.npy"]
    if settings.write_videos:
        names.append(f"{VIDEO_DIR}/{plan.name}.mp4")
    return names


def write_video_files(out: str, settings: SyntheticSettings, plan: VideoPlan) -> List[str]:
    """Write the features (and, if ``settings.write_videos``, the video) of one planned video.

    Args:
        out: the dataset folder.
        settings: the dataset settings.
        plan: the video's plan.

    Returns:
        The written paths, relative to ``out``.
    """
    write_npy(os.path.join(out, FEATURE_DIR, f"{plan.name}.npy"), video_features(plan, settings))
    if settings.write_videos:
        frames = VideoRenderer(plan, settings).frames()
        count = write_mp4(
            os.path.join(out, VIDEO_DIR, f"{plan.name}.mp4"),
            frames,
            fps=FPS,
            crf=settings.crf,
            preset=settings.x264_preset,
            gop=settings.gop,
        )
        if count != plan.num_frames:  # pragma: no cover - would be a renderer bug
            raise RuntimeError(f"{plan.name}: wrote {count} frames, planned {plan.num_frames}")
    return _outputs(settings, plan)


def _make_video(job: Tuple[str, SyntheticSettings, VideoPlan]) -> List[str]:
    """Pool entry point: :func:`write_video_files` on one ``(out, settings, plan)``."""
    return write_video_files(*job)


def _read_manifest(out: str) -> Optional[dict]:
    path = os.path.join(out, MANIFEST_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        logger.warning("Unreadable manifest %s; regenerating.", path)
        return {}


def _is_complete(out: str, manifest: Optional[dict], digest: str) -> bool:
    if not manifest or manifest.get("settings_hash") != digest or manifest.get("complete") is not True:
        return False
    files: Dict[str, int] = manifest.get("files", {})
    paths = {os.path.join(out, n): size for n, size in files.items()}
    return all(os.path.isfile(p) and os.path.getsize(p) == size for p, size in paths.items())


def _generator_files(out: str) -> List[str]:
    """Files in ``out`` that this generator writes (or left half-written)."""
    patterns = [
        ANNOTATION_FILE,
        CLASS_FILE,
        CLASSIFIER_FILE,
        f"{VIDEO_DIR}/video_*.mp4",
        f"{FEATURE_DIR}/video_*.npy",
        f"**/*{PARTIAL_MARK}*",
    ]
    found = set()
    for pattern in patterns:
        found.update(glob.glob(os.path.join(out, pattern), recursive=True))
    return sorted(p for p in found if os.path.isfile(p))


def _prepare_folder(out: str, manifest: Optional[dict], digest: str, force: bool) -> bool:
    """Clean ``out`` for a (re)generation; return True when existing outputs can be kept."""
    existing = _generator_files(out)
    if manifest is None and existing and not force:
        raise FileExistsError(
            f"{out} holds data ({existing[0]}, ...) but no {MANIFEST_FILE}; refusing to overwrite it. "
            "Choose an empty --out folder or pass force=True (--force)."
        )
    resume = bool(manifest) and manifest.get("settings_hash") == digest and not force
    for path in existing:
        if not resume or PARTIAL_MARK in os.path.basename(path):
            os.remove(path)
    if not resume and existing:
        logger.info("Removed %d files of a previous generation in %s.", len(existing), out)
    return resume


def _pending(
    out: str, settings: SyntheticSettings, plans: Sequence[VideoPlan], kept: Optional[Dict[str, int]]
) -> List[VideoPlan]:
    """The plans whose files must be (re)written.

    Args:
        kept: None to rewrite everything; else the sizes the manifest recorded
            (may be empty): an existing file is kept unless its size differs.
    """
    if kept is None:
        return list(plans)

    def present(name: str) -> bool:
        path = os.path.join(out, name)
        return os.path.isfile(path) and kept.get(name, os.path.getsize(path)) == os.path.getsize(path)

    return [p for p in plans if not all(present(n) for n in _outputs(settings, p))]


def _write_manifest(out: str, settings: SyntheticSettings, complete: bool, files: Dict[str, int]) -> None:
    body = {"complete": complete, "settings_hash": settings.digest(), "settings": settings.to_dict(), "files": files}
    write_text(os.path.join(out, MANIFEST_FILE), json.dumps(body, indent=1, sort_keys=True) + "\n")


def _run_jobs(out: str, settings: SyntheticSettings, plans: Sequence[VideoPlan], workers: int) -> None:
    from tqdm import tqdm

    jobs = [(out, settings, p) for p in plans]
    progress = dict(total=len(jobs), desc="synthetic videos", unit="video", disable=not jobs)
    if workers <= 1 or len(jobs) <= 1:
        for job in tqdm(jobs, **progress):
            _make_video(job)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(min(workers, len(jobs))) as pool:
        for _ in tqdm(pool.imap_unordered(_make_video, jobs), **progress):
            pass


def generate_dataset(
    settings: SyntheticSettings, out: str, *, workers: int = 1, force: bool = False
) -> GenerationReport:
    """Generate the dataset of ``settings`` under ``out``, skipping work already done.

    Args:
        settings: what to generate (seed included).
        out: destination folder (created if needed).
        workers: processes rendering videos in parallel (results do not depend on it).
        force: regenerate everything, and allow writing into a folder with data but no manifest.

    Returns:
        A :class:`GenerationReport`.

    Raises:
        FileExistsError: ``out`` holds files this generator would write but no manifest, and ``force`` is False.
    """
    began = time.time()
    digest = settings.digest()
    os.makedirs(out, exist_ok=True)
    manifest = _read_manifest(out)
    plans = plan_dataset(settings)
    num_actions = sum(1 for p in plans for s in p.segments if not s.ambiguous)
    total_frames = sum(p.num_frames for p in plans)
    if not force and _is_complete(out, manifest, digest):
        logger.info("%s is up to date (settings hash %s); nothing to do.", out, digest[:12])
        size = sum(manifest["files"].values())
        return GenerationReport(out, True, len(plans), 0, num_actions, total_frames, size, time.time() - began)

    resume = _prepare_folder(out, manifest, digest, force)
    _write_manifest(out, settings, False, manifest.get("files", {}) if resume else {})
    database = {p.name: p.annotation(settings.class_names) for p in plans}
    write_text(os.path.join(out, ANNOTATION_FILE), json.dumps({"database": database}, indent=1) + "\n")
    write_text(os.path.join(out, CLASS_FILE), "".join(f"{name}\n" for name in settings.class_names))
    write_text(os.path.join(out, CLASSIFIER_FILE), json.dumps(classifier_file(plans, settings)) + "\n")

    todo = _pending(out, settings, plans, manifest.get("files", {}) if resume else None)
    logger.info("Generating %d of %d videos into %s with %d worker(s).", len(todo), len(plans), out, workers)
    _run_jobs(out, settings, todo, workers)

    names = [ANNOTATION_FILE, CLASS_FILE, CLASSIFIER_FILE] + [n for p in plans for n in _outputs(settings, p)]
    files = {n: os.path.getsize(os.path.join(out, n)) for n in names}
    _write_manifest(out, settings, True, files)
    size = sum(files.values())
    return GenerationReport(out, False, len(plans), len(todo), num_actions, total_frames, size, time.time() - began)
