"""Reading ground truth into flat numpy arrays for evaluation (predictions: :mod:`.predictions_io`).

Ground truth is an ActivityNet-style file ``{"database": {video: {"subset": ...,
"annotations": [{"segment": [start, end], "label": name}, ...]}}}``;
predictions are ``{"results": {video: [{"segment": [start, end], "label": name,
"score": s}, ...]}}``, given as a JSON path or as the dict itself. Times are
seconds. Which entries are kept is decided here (see :class:`GroundTruth` and
:class:`Predictions`); the matching itself lives in ``matching.py``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Sequence, Union

import numpy as np

from .builder import remove_duplicate_annotations

__all__ = [
    "entry_label",
    "top_level_key",
    "GroundTruthError",
    "GroundTruth",
    "Predictions",
    "load_json",
    "load_ground_truth",
    "load_blocked_videos",
    "source_name",
]

PathOrDict = Union[str, os.PathLike, Mapping[str, Any]]
LabelOf = Callable[[Mapping[str, Any]], Hashable]


def entry_label(entry: Mapping[str, Any]) -> Hashable:
    """The class of a ground-truth or predicted entry: its ``label`` (mAP's and Recall's rule)."""
    return entry["label"]


def source_name(source: Any) -> str:
    """How messages name an input: the quoted path, or ``(dict)`` for an in-memory one."""
    return repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else "(dict)"


class GroundTruthError(ValueError):
    """The evaluation's ground truth (``ground_truth_filename``) is unusable: bad input, named in one line."""


@dataclass
class GroundTruth:
    """Ground-truth actions of one subset, as parallel arrays of length ``G``.

    Attributes:
        videos: names of the subset's videos (blocked ones removed), in file order.
        classes: class names in order of first appearance in the kept actions.
        video: ``[G]`` int64 index into ``videos``.
        start, end: ``[G]`` float64 seconds.
        label: ``[G]`` int64 index into ``classes``.
        num_ignored: actions dropped because their label is in ``ignored_labels``.
        empty_segments: ``(video, segment)`` of the actions dropped because
            ``end <= start`` (counted in a warning by the evaluator).
    """

    videos: List[str]
    classes: List[str]
    video: np.ndarray
    start: np.ndarray
    end: np.ndarray
    label: np.ndarray
    num_ignored: int = 0
    empty_segments: List[tuple] = field(default_factory=list)


@dataclass
class Predictions:
    """Predicted actions as parallel arrays of length ``N`` (file order).

    Attributes:
        video: ``[N]`` int64 video index; indices ``>= len(gt.videos)`` are
            videos absent from the ground-truth subset (``extra_videos``).
        start, end, score: ``[N]`` float64.
        label: ``[N]`` int64 index into the ground-truth classes, -1 when the
            label is not a ground-truth class.
        extra_videos: names of predicted videos that are not in the subset.
    """

    video: np.ndarray
    start: np.ndarray
    end: np.ndarray
    score: np.ndarray
    label: np.ndarray
    extra_videos: List[str]


def load_json(path: Union[str, os.PathLike], key: str) -> Any:
    """Read a JSON file, naming the config ``key`` and the path on failure.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not valid JSON.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{key}: file not found: {os.fspath(path)!r}")
    try:
        with open(path, "r") as fobj:
            return json.load(fobj)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{key}: {os.fspath(path)!r} is not a valid JSON file: {exc}") from exc


def load_blocked_videos(blocked_videos: Union[None, str, os.PathLike, Sequence[str]]) -> set:
    """The set of blocked video names: from a JSON list file, a list, or None."""
    if blocked_videos is None:
        return set()
    if isinstance(blocked_videos, (str, os.PathLike)):
        blocked_videos = load_json(blocked_videos, "blocked_videos")
    if not isinstance(blocked_videos, (list, tuple, set)):
        raise ValueError(f"blocked_videos must hold a list of video names, got {type(blocked_videos).__name__}")
    return set(blocked_videos)


def top_level_key(data: Any, key: str, source: str, what: str) -> Any:
    """``data[key]``, or a ValueError naming ``what`` (the config key of the file), ``source`` and the keys found.

    Raises:
        ValueError: ``data`` is not a mapping or has no ``key``.
    """
    if not isinstance(data, Mapping) or key not in data:
        found = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(f"{what} {source} has no top-level {key!r} key (found: {found})")
    return data[key]


def _unknown_label_error(name: str, subset: str, unknown: List[tuple], class_map: Sequence[str]) -> GroundTruthError:
    """One-line error for ground-truth labels outside the class map: counts, labels, an example video."""
    labels = sorted({str(label) for _, label in unknown})
    videos = sorted({video for video, _ in unknown})
    shown = list(class_map) if len(class_map) <= 10 else list(class_map[:10]) + ["..."]
    return GroundTruthError(
        f"ground_truth_filename {name}: {len(unknown)} ground-truth segment(s) of {len(videos)} video(s) in "
        f"subset {subset!r} have labels not in the class map {labels} (e.g. video {videos[0]!r}; the class map "
        f"has {len(class_map)} classes: {shown}); correct the labels or the class map, or add labels that are "
        "not classes to the evaluation's ignored_labels"
    )


def load_ground_truth(
    source: Union[str, os.PathLike, Mapping[str, Any]],
    *,
    subset: str,
    blocked: set,
    ignored_labels: Sequence[str] = (),
    class_map: Optional[Sequence[str]] = None,
    label_of: LabelOf = entry_label,
    keep_all: bool = False,
) -> GroundTruth:
    """Read the actions of ``subset``.

    Kept: videos whose ``subset`` equals ``subset`` and that are not blocked;
    within them, actions after :func:`remove_duplicate_annotations` whose label
    is not in ``ignored_labels``. Videos without (kept) actions stay in
    ``videos``; they only turn predictions on them into false positives.
    Actions with ``end <= start`` are dropped and listed in
    ``GroundTruth.empty_segments``.

    Args:
        source: the annotation JSON path or its loaded dict.
        subset: the subset to evaluate.
        blocked: video names left out.
        ignored_labels: labels that are not classes (dropped, counted).
        class_map: the class names the model predicts; when given, every
            other label (not in ``ignored_labels``) is an error.
        label_of: the class of an annotation (default its ``label``); may
            raise ``KeyError``/``ValueError`` for a malformed one.
        keep_all: keep every action, duplicates and ``end <= start`` ones
            included (``mAP_EPIC``'s rule; such an action is a positive that
            no prediction can match).

    Raises:
        FileNotFoundError: the file does not exist.
        GroundTruthError: (a ``ValueError``) not JSON, no ``database`` key, a
            video without ``subset`` (or, in ``subset``, without ``annotations``), a malformed action, labels
            outside ``class_map`` (all counted in one message), or no action in
            ``subset`` (the message lists the subsets present).
    """
    name = source_name(source)
    try:
        data = load_json(source, "ground_truth_filename") if isinstance(source, (str, os.PathLike)) else source
        database = top_level_key(data, "database", name, "ground_truth_filename")
    except ValueError as exc:  # not JSON, no 'database' (a missing file stays a FileNotFoundError)
        raise GroundTruthError(str(exc)) from exc
    if not isinstance(database, Mapping):
        raise GroundTruthError(
            f"ground_truth_filename {name}: 'database' must map video names to entries, got {type(database).__name__}"
        )
    scan = _Scan(ignored=set(ignored_labels), known=None if class_map is None else set(class_map),
                 label_of=label_of, keep_all=keep_all)
    subsets_seen = set()
    for video_name, info in database.items():
        if not isinstance(info, Mapping) or "subset" not in info:
            raise GroundTruthError(f"ground_truth_filename {name}: video {video_name!r} lacks 'subset'")
        subsets_seen.add(info["subset"])
        if info["subset"] != subset or video_name in blocked:
            continue  # other subsets may hold no 'annotations' (Ego4D's and EPIC's test videos)
        if "annotations" not in info:
            raise GroundTruthError(
                f"ground_truth_filename {name}: video {video_name!r} of subset {subset!r} lacks 'annotations'"
            )
        try:
            scan.add_video(video_name, info["annotations"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise GroundTruthError(
                f"ground_truth_filename {name}: malformed annotation in video {video_name!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    if scan.unknown:
        raise _unknown_label_error(name, subset, scan.unknown, list(class_map))
    if not scan.rows:
        raise GroundTruthError(
            f"ground_truth_filename {name}: no ground-truth action in subset {subset!r} "
            f"(subsets present: {sorted(map(str, subsets_seen))})"
        )
    video, start, end, label = (np.asarray(col) for col in zip(*scan.rows))
    return GroundTruth(
        videos=scan.videos,
        classes=list(scan.classes),
        video=video.astype(np.int64),
        start=start.astype(np.float64),
        end=end.astype(np.float64),
        label=label.astype(np.int64),
        num_ignored=scan.num_ignored,
        empty_segments=scan.empty_segments,
    )


@dataclass
class _Scan:
    """What :func:`load_ground_truth` collects, video by video."""

    ignored: set
    known: Optional[set]
    label_of: LabelOf = entry_label
    keep_all: bool = False
    videos: List[str] = field(default_factory=list)
    classes: Dict[Hashable, int] = field(default_factory=dict)
    rows: List[tuple] = field(default_factory=list)
    unknown: List[tuple] = field(default_factory=list)
    empty_segments: List[tuple] = field(default_factory=list)
    num_ignored: int = 0

    def add_video(self, video_name: str, annotations: Sequence[Mapping[str, Any]]) -> None:
        """Count ignored, unknown and empty actions, then keep the others (duplicates removed)."""
        vidx = len(self.videos)
        self.videos.append(video_name)
        if self.keep_all:
            for ann in annotations:
                self._keep(vidx, ann, self.label_of(ann))
            return
        for ann in annotations:
            label = self.label_of(ann)
            if label in self.ignored:
                self.num_ignored += 1
            elif self.known is not None and label not in self.known:
                self.unknown.append((video_name, label))
            elif float(ann["segment"][1]) - float(ann["segment"][0]) <= 0:  # as remove_duplicate_annotations
                self.empty_segments.append((video_name, list(ann["segment"])))
        for ann in remove_duplicate_annotations(annotations):
            label = self.label_of(ann)
            if label not in self.ignored and (self.known is None or label in self.known):
                self._keep(vidx, ann, label)

    def _keep(self, vidx: int, ann: Mapping[str, Any], label: Hashable) -> None:
        cidx = self.classes.setdefault(label, len(self.classes))
        self.rows.append((vidx, float(ann["segment"][0]), float(ann["segment"][1]), cidx))
