"""Reading predictions into flat numpy arrays for evaluation, and the warnings about both inputs.

Predictions are ``{"results": {video: [{"segment": [start, end], "label":
name, "score": s}, ...]}}``, given as a JSON path or as the dict itself, read
against the :class:`~.io.GroundTruth` of :func:`~.io.load_ground_truth`.
"""
from __future__ import annotations

import logging
import os
from typing import Any, List, Mapping, Optional, Sequence

import numpy as np

from .io import GroundTruth, LabelOf, PathOrDict, Predictions, entry_label, load_json, top_level_key

__all__ = ["load_predictions", "warn_about_inputs"]

logger = logging.getLogger(__name__)


def _bad_entry(results: Mapping[str, Any], blocked: set, label_of: Optional[LabelOf]) -> str:
    """Describe the first prediction entry (outside blocked videos) that cannot be read."""
    for video_name, items in results.items():
        if video_name in blocked:
            continue
        if not isinstance(items, (list, tuple)):
            return f"video {video_name!r}: expected a list of predictions, got {type(items).__name__}"
        for i, item in enumerate(items):
            try:
                float(item["segment"][0]), float(item["segment"][1]), float(item["score"])
                if label_of is not None:
                    hash(label_of(item))
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                return f"video {video_name!r}, prediction {i} ({item!r}): {type(exc).__name__}: {exc}"
    return "unknown entry"  # pragma: no cover - only called after a failure


def load_predictions(
    source: PathOrDict, *, gt: GroundTruth, blocked: set, label_of: Optional[LabelOf] = entry_label
) -> Predictions:
    """Read predictions, dropping those of blocked videos.

    Predictions whose class (``label_of``, default the ``label`` key) is not a
    ground-truth class get label -1 (they are not evaluated); with
    ``label_of=None`` (class-agnostic proposals) no label is read and every
    label is -1. Videos outside the ground-truth subset keep their predictions
    (they are false positives).

    Raises:
        FileNotFoundError, ValueError: unreadable file, no ``results`` key, an
            entry without ``segment``/``label``/``score`` or a NaN score (the
            message names the video and the entry).
        TypeError: ``source`` is neither a path nor a dict.
    """
    if isinstance(source, (str, os.PathLike)):
        name = repr(os.fspath(source))
        data = load_json(source, "prediction_filename")
    elif isinstance(source, Mapping):
        name, data = "(dict)", source
    else:
        raise TypeError(f"prediction_filename must be a JSON path or a dict, got {type(source).__name__}")
    results = top_level_key(data, "results", name, "prediction_filename")
    if not isinstance(results, Mapping):
        raise ValueError(f"prediction_filename {name}: 'results' must map video names to lists")
    video_index = {v: i for i, v in enumerate(gt.videos)}
    class_index = {c: i for i, c in enumerate(gt.classes)}
    extra: List[str] = []
    vids: List[int] = []
    cols: List[tuple] = []
    try:
        for video_name, items in results.items():
            if video_name in blocked:
                continue
            if video_name not in video_index:
                video_index[video_name] = len(video_index)
                extra.append(video_name)
            vidx = video_index[video_name]
            cols.extend(
                (float(r["segment"][0]), float(r["segment"][1]), float(r["score"]),
                 -1 if label_of is None else class_index.get(label_of(r), -1))
                for r in items
            )
            vids.extend([vidx] * (len(cols) - len(vids)))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        where = _bad_entry(results, blocked, label_of)
        raise ValueError(f"prediction_filename {name}: malformed prediction at {where}") from exc
    arr = np.asarray(cols, dtype=np.float64).reshape(-1, 4)
    video = np.asarray(vids, dtype=np.int64)
    if np.isnan(arr[:, 2]).any():
        bad = int(np.flatnonzero(np.isnan(arr[:, 2]))[0])
        names = list(video_index)
        raise ValueError(f"prediction_filename {name}: NaN score in a prediction of video {names[video[bad]]!r}")
    return Predictions(
        video=video,
        start=arr[:, 0].copy(),
        end=arr[:, 1].copy(),
        score=arr[:, 2].copy(),
        label=arr[:, 3].astype(np.int64),
        extra_videos=extra,
    )


def warn_about_inputs(
    gt: GroundTruth, pred: Predictions, *, source: str, subset: str, ignored_labels: Sequence[str], labelled=True
) -> None:
    """Log what the evaluation leaves out or counts against the predictions, once per evaluator.

    Args:
        gt, pred: what :func:`load_ground_truth` and :func:`load_predictions` read.
        source: the ground-truth file as messages name it (:func:`source_name`).
        subset: the evaluated subset.
        ignored_labels: the labels counted in ``gt.num_ignored``.
        labelled: whether predictions carry classes (False for class-agnostic proposals).
    """
    if gt.num_ignored:
        logger.info("Ignored %d ground-truth actions labelled %s.", gt.num_ignored, list(ignored_labels))
    if gt.empty_segments:
        examples = "; ".join(f"{video} segment={segment}" for video, segment in gt.empty_segments[:3])
        logger.warning(
            "ground_truth_filename %s: %d ground-truth segment(s) of %d video(s) in subset %r have "
            "end <= start (e.g. %s); they are not evaluated.", source, len(gt.empty_segments),
            len({video for video, _ in gt.empty_segments}), subset, examples,
        )
    if pred.extra_videos:
        logger.warning(
            "%d predicted video(s) are not in the %r ground truth (e.g. %r); their predictions %s.",
            len(pred.extra_videos), subset, pred.extra_videos[0],
            "count as false positives" if labelled else "only count in the proposal budget",
        )
    unknown = int((pred.label < 0).sum()) if labelled else 0
    if unknown:
        logger.warning(
            "%d prediction(s) have labels that are not ground-truth classes; they are not evaluated.", unknown
        )
