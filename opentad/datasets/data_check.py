"""Checking an annotation file against its class map and its feature (or video) folder, before training.

:func:`check_annotations` reads an OpenTAD / ActivityNet-style annotation
file (``{"database": {video: {"subset", "duration", "annotations": [{"label",
"segment"}]}}}``) and reports, without raising on any of them:

* segments that are unusable (not two numbers, ``end <= start``, or entirely
  outside ``[0, duration]``: the datasets skip them with a counted warning);
* segments that reach outside ``[0, duration]`` (ActivityNet has such; the
  datasets keep them and the pipelines clip them);
* labels missing from the class map (the datasets raise on them);
* videos without ``duration`` (or with ``duration <= 0``);
* videos whose file ``data_path/<prefix><video><suffix>`` does not exist (the
  content of a block list).

The report's :meth:`DataReport.lines` gives one line per kind with its count
and the first offenders, for ``tools/prepare_data/*/check_data.py``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from opentad.utils.class_map import read_class_map

from .base.util import load_annotation_database

__all__ = ["DataReport", "check_annotations", "classify_segment"]

#: offenders quoted per line of :meth:`DataReport.lines`
SHOWN = 5


def classify_segment(segment: Any, duration: float) -> str:
    """``"ok"``, ``"outside"`` (reaches past 0 or ``duration``, still overlaps the video) or why it is unusable.

    Unusable reasons: ``"not two numbers"`` (NaN and infinities included), ``"end <= start"``, ``"outside the video"``.
    """
    try:
        if len(segment) != 2:
            return "not two numbers"
        start, end = float(segment[0]), float(segment[1])
    except (TypeError, ValueError):
        return "not two numbers"
    if not (math.isfinite(start) and math.isfinite(end)):
        return "not two numbers"
    if not end > start:
        return "end <= start"
    if start >= duration or end <= 0:
        return "outside the video"
    return "outside" if start < 0 or end > duration else "ok"


@dataclass
class DataReport:
    """What :func:`check_annotations` found.

    Attributes:
        videos: videos per subset (of the checked subsets).
        segments: segments of those videos.
        bad_segments: ``(video, segment, reason)`` of unusable segments.
        outside: ``(video, segment, duration)`` of segments reaching outside the video.
        unknown_labels: label -> videos that use it (only with a class map).
        bad_videos: ``(video, problem)``: no ``duration``, or ``duration <= 0``.
        missing_files: videos without a file (only with a data folder), sorted.
    """

    videos: Dict[str, int] = field(default_factory=dict)
    segments: int = 0
    bad_segments: List[Tuple[str, Any, str]] = field(default_factory=list)
    outside: List[Tuple[str, Any, float]] = field(default_factory=list)
    unknown_labels: Dict[str, List[str]] = field(default_factory=dict)
    bad_videos: List[Tuple[str, str]] = field(default_factory=list)
    missing_files: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing would make a dataset skip, refuse or miss data (``outside`` segments are fine)."""
        return not (self.bad_segments or self.unknown_labels or self.bad_videos or self.missing_files)

    def lines(self) -> List[str]:
        """One line per kind: the count and the first :data:`SHOWN` offenders."""

        def quote(items: Sequence[str]) -> str:
            return "" if not items else " (" + "; ".join(items[:SHOWN]) + ("; ..." if len(items) > SHOWN else "") + ")"

        subsets = ", ".join(f"{name}: {n}" for name, n in sorted(self.videos.items()))
        unknown = [f"{label!r} in {len(v)} video(s), e.g. {v[0]}" for label, v in sorted(self.unknown_labels.items())]
        return [
            f"videos: {subsets}; segments: {self.segments}",
            f"unusable segments (skipped by the datasets): {len(self.bad_segments)}"
            + quote([f"{v} {s} {why}" for v, s, why in self.bad_segments]),
            f"segments reaching outside [0, duration] (kept, clipped by the pipelines): {len(self.outside)}"
            + quote([f"{v} {s} duration={d}" for v, s, d in self.outside]),
            f"unknown labels (the datasets refuse them): {len(self.unknown_labels)}" + quote(unknown),
            f"videos without a usable duration: {len(self.bad_videos)}"
            + quote([f"{v}: {p}" for v, p in self.bad_videos]),
            f"missing files: {len(self.missing_files)}" + quote(self.missing_files),
        ]


def _check_video(report: DataReport, name: str, info: Mapping[str, Any], classes: Optional[set]) -> None:
    duration = info.get("duration") if isinstance(info, Mapping) else None
    try:
        duration = float(duration)
    except (TypeError, ValueError):
        report.bad_videos.append((name, f"duration={duration!r}"))
        return
    if not duration > 0:
        report.bad_videos.append((name, f"duration={duration!r}"))
        return
    for anno in info.get("annotations", []) or []:
        report.segments += 1
        label, segment = anno.get("label"), anno.get("segment")
        if classes is not None and label not in classes:
            report.unknown_labels.setdefault(label, []).append(name)
        kind = classify_segment(segment, duration)
        if kind == "outside":
            report.outside.append((name, segment, duration))
        elif kind != "ok":
            report.bad_segments.append((name, segment, kind))


def check_annotations(
    ann_file: str,
    *,
    class_map: Optional[str] = None,
    data_path: Optional[str] = None,
    prefix: str = "",
    suffix: str = ".npy",
    subsets: Optional[Sequence[str]] = None,
    ignored_labels: Iterable[str] = (),
    progress: Optional[Callable[[Iterable], Iterable]] = None,
) -> DataReport:
    """Check ``ann_file`` (and optionally its class map and data folder).

    Args:
        ann_file: the annotation JSON.
        class_map: class map file (one name per line); None skips the label check.
        data_path: folder of the features / videos; None skips the file check.
        prefix, suffix: file name is ``<prefix><video><suffix>`` (ActivityNet's features: ``v_``, ``.npy``).
        subsets: only videos of these subsets (all by default).
        ignored_labels: labels that are not classes (THUMOS' ``Ambiguous``).
        progress: wraps the iteration over videos (e.g. ``tqdm``).

    Returns:
        A :class:`DataReport`.

    Raises:
        FileNotFoundError / ValueError: the annotation file or the class map
            is missing or unreadable (the message names it).
    """
    database = load_annotation_database(ann_file)
    classes = None if class_map is None else set(read_class_map(class_map)) | set(ignored_labels)
    selected = [(n, i) for n, i in database.items() if subsets is None or (i or {}).get("subset") in subsets]
    report = DataReport()
    for name, info in progress(selected) if progress else selected:
        subset = str(info.get("subset")) if isinstance(info, Mapping) else "None"
        report.videos[subset] = report.videos.get(subset, 0) + 1
        _check_video(report, name, info, classes)
        if data_path is not None and not os.path.isfile(os.path.join(data_path, f"{prefix}{name}{suffix}")):
            report.missing_files.append(name)
    report.missing_files.sort()
    return report
