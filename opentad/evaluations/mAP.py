"""Temporal action detection mAP, with upstream OpenTAD's ``mAP`` config keys.

Rules (those of upstream OpenTAD / the ActivityNet toolkit unless marked):

* Ground truth: videos of ``subset`` that are not blocked; per video, actions
  with non-positive duration and duplicates (same label, boundaries within
  1e-3 s of a kept action) are dropped. *Here only:* actions whose label is in
  ``ignored_labels`` (default ``("Ambiguous",)``, THUMOS's "don't care" marks)
  are dropped too. Videos without predictions keep their ground truth (misses).
* *Here only:* checks of the ground truth like training's. With ``class_map``
  (the test engine passes the test dataset's), a ground-truth label that is
  neither in the class map nor in ``ignored_labels`` is a ``GroundTruthError``
  (a ``ValueError``: counts, labels, an example video): the model cannot
  predict it, so it would be a class with AP 0 that lowers the mean.
  :meth:`mAP.check_ground_truth` runs these checks without predictions, at a
  run's set-up (before the first epoch). Actions with ``end <= start`` are
  dropped as upstream, counted in ONE warning.
* Classes: the labels of the kept ground truth, in order of first appearance.
  A predicted label outside that set is not evaluated (it cannot change any
  AP); a class that appears only in predictions therefore has no AP.
  A class without ground truth in the evaluated subset is thus left out of
  the mean (upstream does the same, silently); *here only:* with
  ``class_map``, such classes are named in ONE warning. Never NaN: a subset
  without any ground-truth action is a ``GroundTruthError`` (upstream
  reports NaN, its issue #27).
* Predictions of blocked videos are dropped; predictions of videos that are
  not in the subset are kept and are false positives.
* Per class, predictions are ranked by decreasing score; *equal scores keep
  input order* (video order in ``results``, then list order). Upstream sorts
  with numpy's unstable argsort, whose tie order depends on the platform.
* At each tIoU threshold a prediction matches the unmatched ground truth of
  its class and video with the highest tIoU >= threshold (*equal tIoU: the
  earlier ground truth in file order*); each ground truth matches at most once.
* AP is the ActivityNet interpolated AP (precision envelope, see
  :func:`~opentad.evaluations.matching.interpolated_ap`); a class without any
  prediction has AP 0. mAP is the mean over classes, ``average_mAP`` the mean
  of mAP over thresholds.
* ``top_k`` adds upstream's top-kx recall (``recall@{tiou}@{k}``); it does not
  filter predictions for the mAP.
"""
from __future__ import annotations

import inspect
import logging
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np

from opentad.registry import EVALUATORS
from opentad.utils.class_map import read_class_map

from .io import GroundTruth, load_blocked_videos, load_ground_truth, source_name
from .predictions_io import load_predictions, warn_about_inputs
from .matching import greedy_match, interpolated_ap, overlapping_pairs, segment_tiou, topkx_recall

__all__ = ["mAP"]


def _check_thresholds(tiou_thresholds: Sequence[float]) -> list:
    values = [float(t) for t in np.asarray(tiou_thresholds, dtype=np.float64).reshape(-1)]
    if not values or any(not 0.0 < t <= 1.0 for t in values):
        raise ValueError(f"tiou_thresholds must be a non-empty list of values in (0, 1], got {tiou_thresholds!r}")
    return values


@EVALUATORS.register_module()
class mAP:  # noqa: N801 - upstream's registered name
    """Mean average precision over classes at several tIoU thresholds.

    Args:
        ground_truth_filename: ActivityNet-style annotation JSON (``database``),
            or the loaded dict.
        prediction_filename: a JSON path or the dict
            ``{"results": {video: [{"segment": [s, e], "label": name, "score": p}]}}``.
        subset: the ``subset`` value of the videos to evaluate, e.g. ``"validation"``.
        tiou_thresholds: tIoU thresholds in (0, 1], e.g. ``[0.3, 0.4, 0.5, 0.6, 0.7]``.
        top_k: if set, also report top-kx recall for each k.
        blocked_videos: a JSON file holding a list of video names (or the list)
            left out of ground truth and predictions.
        thread: accepted for upstream configs; evaluation is single-process.
        ignored_labels: ground-truth labels that are not classes (not upstream).
        class_map: the class names the model predicts, a class map file (one
            name per line) or a list; None skips the label check (not upstream).

    Raises:
        FileNotFoundError: a file named by a key does not exist.
        GroundTruthError: (a ``ValueError``) ``ground_truth_filename`` is malformed,
            has no action in ``subset`` or labels outside ``class_map``.
        ValueError: malformed prediction or ``blocked_videos``, thresholds outside
            (0, 1], non-positive ``top_k``.
        TypeError: ``prediction_filename`` is neither a path nor a dict.
    """

    def __init__(
        self,
        *,
        ground_truth_filename: Union[str, os.PathLike, Mapping[str, Any]],
        prediction_filename: Union[str, os.PathLike, Mapping[str, Any]],
        subset: str,
        tiou_thresholds: Sequence[float],
        top_k: Optional[Sequence[int]] = None,
        blocked_videos: Union[None, str, os.PathLike, Sequence[str]] = None,
        thread: int = 16,
        ignored_labels: Sequence[str] = ("Ambiguous",),
        class_map: Union[None, str, os.PathLike, Sequence[str]] = None,
    ) -> None:
        if not ground_truth_filename:
            raise ValueError("ground_truth_filename is empty; give the annotation JSON path")
        if prediction_filename is None or (isinstance(prediction_filename, str) and not prediction_filename):
            raise ValueError("prediction_filename is empty; give a JSON path or a {'results': ...} dict")
        self.subset = subset
        self.tiou_thresholds = _check_thresholds(tiou_thresholds)
        self.top_k = None if top_k is None else [int(k) for k in top_k]
        if self.top_k is not None and (not self.top_k or min(self.top_k) < 1):
            raise ValueError(f"top_k must be a non-empty list of positive integers, got {top_k!r}")
        self.thread = thread
        self.ignored_labels = list(ignored_labels)
        blocked = load_blocked_videos(blocked_videos)
        self.class_map = None if class_map is None else read_class_map(class_map)
        self.ground_truth, self.prediction = self._load(ground_truth_filename, prediction_filename, blocked)
        warn_about_inputs(self.ground_truth, self.prediction, source=source_name(ground_truth_filename),
                          subset=subset, ignored_labels=self.ignored_labels)
        self._warn_classes_without_ground_truth(source_name(ground_truth_filename))
        self.ap: Optional[np.ndarray] = None

    def _load(self, ground_truth_filename, prediction_filename, blocked: set):
        """Ground truth and predictions under this evaluator's label rules (``mAP_EPIC`` overrides it)."""
        gt = load_ground_truth(ground_truth_filename, subset=self.subset, blocked=blocked,
                               ignored_labels=self.ignored_labels, class_map=self.class_map)
        return gt, load_predictions(prediction_filename, gt=gt, blocked=blocked)

    def _warn_classes_without_ground_truth(self, source: str) -> None:
        """ONE warning naming the classes of ``class_map`` without ground truth here (left out of the mean)."""
        if self.class_map is None:
            return
        present = set(self.ground_truth.classes)
        absent = [name for name in self.class_map if name not in present and name not in self.ignored_labels]
        if absent:
            shown = absent[:10] + (["..."] if len(absent) > 10 else [])
            logging.getLogger(__name__).warning(
                "ground_truth_filename %s: %d of the %d classes of the class map have no ground-truth action in "
                "subset %r: %s; they have no AP and are left out of the mean (mAP averages the %d classes with "
                "ground truth).", source, len(absent), len(self.class_map), self.subset, shown,
                len(self.ground_truth.classes),
            )

    @classmethod
    def check_ground_truth(cls, **cfg: Any) -> Optional[GroundTruth]:
        """Read and check the ground truth of an ``evaluation`` config without predictions (a run's set-up).

        The same checks as the constructor's (``class_map``: labels, structure,
        ``subset``, ``blocked_videos``), so a bad file is found before any
        epoch; warnings are left to the evaluation.

        Args:
            **cfg: the config keys (no ``type``); keys left out take the constructor's defaults.

        Returns:
            The ground truth, or None when ``ground_truth_filename`` or ``subset``
            is not set (building the evaluator reports that).

        Raises:
            FileNotFoundError, GroundTruthError, ValueError: as the constructor.
        """
        keys = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
        keys.update(cfg)
        if not keys.get("ground_truth_filename") or "subset" not in keys:
            return None
        class_map = None if keys["class_map"] is None else read_class_map(keys["class_map"])
        return load_ground_truth(
            keys["ground_truth_filename"], subset=keys["subset"], blocked=load_blocked_videos(keys["blocked_videos"]),
            ignored_labels=list(keys["ignored_labels"]), class_map=class_map,
        )

    def _ranked_predictions(self) -> np.ndarray:
        """Indices of evaluated predictions ordered by (class, -score, input order)."""
        pred = self.prediction
        known = np.flatnonzero(pred.label >= 0)
        by_score = known[np.argsort(-pred.score[known], kind="stable")]
        return by_score[np.argsort(pred.label[by_score], kind="stable")]

    def _group(self, label: np.ndarray, video: np.ndarray) -> np.ndarray:
        """Integer id of each (class, video) pair, the unit within which matching happens."""
        return label * np.int64(len(self.ground_truth.videos) + len(self.prediction.extra_videos)) + video

    def _match(self, ranked: np.ndarray):
        """Candidate pairs between ranked predictions and ground truth, with tIoU."""
        gt, pred = self.ground_truth, self.prediction
        gt_group = self._group(gt.label, gt.video)
        pred_group = self._group(pred.label[ranked], pred.video[ranked])
        p_start, p_end = pred.start[ranked], pred.end[ranked]
        pair_pred, pair_gt = overlapping_pairs(gt_group, gt.start, gt.end, pred_group, p_start, p_end)
        pair_iou = segment_tiou(p_start[pair_pred], p_end[pair_pred], gt.start[pair_gt], gt.end[pair_gt])
        keep = pair_iou >= min(self.tiou_thresholds)
        return pred_group, pair_pred[keep], pair_gt[keep], pair_iou[keep]

    def evaluate(self) -> Dict[str, Any]:
        """Compute the metrics.

        Returns:
            ``{"average_mAP": float, "mAP@{tiou}": float, ...,
            "recall@{tiou}@{k}": float (only with top_k),
            "per_class_AP": {class: {"AP@{tiou}": float, ..., "average": float}}}``.
            All values but ``per_class_AP`` are floats, keyed as upstream.
        """
        gt = self.ground_truth
        num_classes = len(gt.classes)
        ranked = self._ranked_predictions()
        pred_group, pair_pred, pair_gt, pair_iou = self._match(ranked)
        tp = greedy_match(pair_pred, pair_gt, pair_iou, self.tiou_thresholds, len(ranked), len(gt.label))
        npos = np.bincount(gt.label, minlength=num_classes)
        bounds = np.searchsorted(self.prediction.label[ranked], np.arange(num_classes + 1))
        self.ap = np.stack(
            [interpolated_ap(tp[:, bounds[c] : bounds[c + 1]], int(npos[c])) for c in range(num_classes)], axis=1
        )
        self.mAPs = self.ap.mean(axis=1)
        self.average_mAP = float(self.mAPs.mean())
        metrics: Dict[str, Any] = {"average_mAP": self.average_mAP}
        metrics.update({f"mAP@{t}": float(m) for t, m in zip(self.tiou_thresholds, self.mAPs)})
        if self.top_k is not None:
            self.mRecall = self._recall(ranked, pred_group, pair_pred, pair_gt, pair_iou)
            for t, row in zip(self.tiou_thresholds, self.mRecall):
                metrics.update({f"recall@{t}@{k}": float(r) for k, r in zip(self.top_k, row)})
        metrics["per_class_AP"] = {
            name: {**{f"AP@{t}": float(a) for t, a in zip(self.tiou_thresholds, self.ap[:, c])},
                   "average": float(self.ap[:, c].mean())}
            for c, name in enumerate(gt.classes)
        }
        return metrics

    def _recall(self, ranked, pred_group, pair_pred, pair_gt, pair_iou) -> np.ndarray:
        """``[T, len(top_k)]`` top-kx recall averaged over classes."""
        gt = self.ground_truth
        by_group = np.argsort(pred_group, kind="stable")  # keeps rank order within a (class, video)
        sorted_group = pred_group[by_group]
        pos = np.empty(len(ranked), dtype=np.int64)
        pos[by_group] = np.arange(len(ranked)) - np.searchsorted(sorted_group, sorted_group, side="left")
        _, inverse, group_size = np.unique(self._group(gt.label, gt.video), return_inverse=True, return_counts=True)
        found = topkx_recall(pair_pred, pair_gt, pair_iou, pos, group_size[inverse], self.tiou_thresholds, self.top_k)
        num_classes = len(gt.classes)
        flat = found.reshape(-1, len(gt.label))
        per_class = np.stack([np.bincount(gt.label, weights=f, minlength=num_classes) for f in flat])
        per_class = per_class / np.bincount(gt.label, minlength=num_classes)
        return per_class.mean(axis=1).reshape(len(self.tiou_thresholds), len(self.top_k))

    def logging(self, logger: Optional[logging.Logger] = None) -> None:  # noqa: D401 - upstream name
        """Log the summary table researchers know (and per-class AP at DEBUG).

        Args:
            logger: where to write; this module's logger when None.

        Raises:
            RuntimeError: :meth:`evaluate` has not been called.
        """
        if self.ap is None:
            raise RuntimeError("mAP.logging() needs evaluate() to be called first")
        log = logger if logger is not None else logging.getLogger(__name__)
        log.info("Loaded annotations from %s subset.", self.subset)
        log.info("Number of ground truth instances: %d", len(self.ground_truth.label))
        log.info("Number of predictions: %d", len(self.prediction.label))
        log.info("Fixed threshold for tiou score: %s", self.tiou_thresholds)
        log.info("Average-mAP: %4.2f (%%)", self.average_mAP * 100)
        for t, m in zip(self.tiou_thresholds, self.mAPs):
            log.info("mAP at tIoU %.2f is %4.2f%%", t, m * 100)
        if self.top_k is not None:
            log.info("Fixed top-kx results: %s", self.top_k)
            for t, row in zip(self.tiou_thresholds, self.mRecall):
                recalls = ", ".join(f"R{k:d} is {r * 100:>4.2f}%" for k, r in zip(self.top_k, row))
                log.info("Recall at tIoU %.2f: %s", t, recalls)
        for c, name in enumerate(self.ground_truth.classes):
            log.debug("AP of %s: %s", name, " ".join(f"{a * 100:.2f}" for a in self.ap[:, c]))
