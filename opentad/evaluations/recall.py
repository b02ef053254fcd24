"""Proposal average recall (AR@AN and the AR-AN AUC), with upstream OpenTAD's ``Recall`` config keys.

Rules (those of upstream OpenTAD / the ActivityNet proposal toolkit unless marked):

* Ground truth as :class:`~opentad.evaluations.mAP.mAP` reads it (subset,
  blocked videos, duplicates and ``end <= start`` actions dropped; labels in
  ``ignored_labels`` dropped, none by default, as upstream). Labels play no
  other part: proposals are class-agnostic (a proposal's ``label`` is not read).
  ``V`` is the number of videos with at least one kept action.
* The proposal budget: with ``N`` the number of proposals read (blocked videos
  left out, proposals of other videos included) and ``M =
  max_avg_nr_proposals`` (``N / V`` when unset or 0), ``ratio = M * V / N``;
  a video with ``n`` proposals keeps its ``min(int(n * ratio), n)`` best by
  score (*equal scores: input order*; upstream's order of ties depends on
  numpy's unstable sort). ``total`` is the number kept over the ``V`` videos.
* The AR-AN curve: for ``j = 1..M``, ``p_j = j / M * (M * V / total)``; a
  video that keeps ``m`` proposals uses its first ``min(int(m * p_j), m)``,
  and a ground-truth action is recalled at threshold ``t`` when one of them
  has tIoU >= t with it. ``recall[t, j]`` is the recalled fraction of all
  ground-truth actions, ``AR`` its mean over thresholds and ``AN_j = p_j *
  total / V`` (about ``j``). ``AUC`` is the trapezoidal area under AR(AN)
  divided by the last AN; ``AR@k`` is ``recall[:, k - 1]`` averaged over
  thresholds (so ``k <= M``).
* *Here only (upstream divides by zero):* when no proposal is kept in a
  video with ground truth, every recall and the AUC are 0 (and ``M`` is
  ``max(topk)`` when it would be ``N / V = 0``).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np

from opentad.registry import EVALUATORS

from .io import GroundTruth, load_blocked_videos, load_ground_truth, source_name
from .predictions_io import load_predictions, warn_about_inputs
from .mAP import _check_thresholds, mAP
from .matching import first_hit, overlapping_pairs, segment_tiou

__all__ = ["Recall"]


@EVALUATORS.register_module()
class Recall:
    """Average recall of class-agnostic proposals at average numbers of proposals per video.

    Args:
        ground_truth_filename: ActivityNet-style annotation JSON (``database``), or the loaded dict.
        prediction_filename: a JSON path or ``{"results": {video: [{"segment": [s, e], "score": p}]}}``.
        subset: the ``subset`` value of the videos to evaluate, e.g. ``"validation"``.
        tiou_thresholds: tIoU thresholds in (0, 1]; upstream's proposal configs use 0.5:0.05:0.95.
        topk: the ``k`` of the reported ``AR@k`` (each in ``[1, M]``).
        max_avg_nr_proposals: ``M``, the largest average number of proposals per
            video; None or 0: the average number given.
        blocked_videos: a JSON file holding a list of video names (or the list)
            left out of ground truth and proposals.
        ignored_labels: ground-truth labels left out (default none: upstream counts THUMOS's ``Ambiguous``
            marks as actions to recall; ``("Ambiguous",)`` leaves them out as ``mAP`` does).
        class_map: accepted (the test engine passes the dataset's), not used: proposals have no class.

    Raises:
        FileNotFoundError: a file named by a key does not exist.
        GroundTruthError: ``ground_truth_filename`` is malformed or has no action in ``subset``.
        ValueError: malformed proposals, thresholds outside (0, 1], ``topk`` outside
            ``[1, M]``, negative ``max_avg_nr_proposals``.
    """

    def __init__(
        self,
        *,
        ground_truth_filename: Union[str, os.PathLike, Mapping[str, Any]],
        prediction_filename: Union[str, os.PathLike, Mapping[str, Any]],
        subset: str,
        tiou_thresholds: Sequence[float],
        topk: Sequence[int] = (1, 5, 10, 100),
        max_avg_nr_proposals: Optional[float] = 100,
        blocked_videos: Union[None, str, os.PathLike, Sequence[str]] = None,
        ignored_labels: Sequence[str] = (),
        class_map: Union[None, str, os.PathLike, Sequence[str]] = None,
    ) -> None:
        if not ground_truth_filename:
            raise ValueError("ground_truth_filename is empty; give the annotation JSON path")
        if prediction_filename is None or (isinstance(prediction_filename, str) and not prediction_filename):
            raise ValueError("prediction_filename is empty; give a JSON path or a {'results': ...} dict")
        if max_avg_nr_proposals is not None and max_avg_nr_proposals < 0:
            raise ValueError(f"max_avg_nr_proposals must be positive, or None/0 for the average given, "
                             f"got {max_avg_nr_proposals!r}")
        self.subset = subset
        self.tiou_thresholds = _check_thresholds(tiou_thresholds)
        self.topk = [int(k) for k in topk]
        self.max_avg_nr_proposals = max_avg_nr_proposals
        if not self.topk or min(self.topk) < 1 or (max_avg_nr_proposals and max(self.topk) > max_avg_nr_proposals):
            raise ValueError(f"topk must be a non-empty list of integers in [1, max_avg_nr_proposals="
                             f"{max_avg_nr_proposals}], got {list(topk)!r}")
        self.ignored_labels = list(ignored_labels)
        blocked = load_blocked_videos(blocked_videos)
        self.ground_truth = load_ground_truth(ground_truth_filename, subset=subset, blocked=blocked,
                                              ignored_labels=self.ignored_labels)
        self.proposal = load_predictions(prediction_filename, gt=self.ground_truth, blocked=blocked, label_of=None)
        warn_about_inputs(self.ground_truth, self.proposal, source=source_name(ground_truth_filename),
                          subset=subset, ignored_labels=self.ignored_labels, labelled=False)
        self.recall: Optional[np.ndarray] = None

    @classmethod
    def check_ground_truth(cls, **cfg: Any) -> Optional[GroundTruth]:
        """Read and check the ground truth of an ``evaluation`` config without proposals (a run's set-up).

        Raises:
            FileNotFoundError, GroundTruthError, ValueError: as the constructor.
        """
        keys = ("ground_truth_filename", "subset", "blocked_videos", "ignored_labels")
        return mAP.check_ground_truth(**{key: value for key, value in cfg.items() if key in keys})

    def _kept_proposals(self, ratio: float):
        """Proposals of videos with ground truth that fit the budget, and their rank within the video.

        Returns:
            ``(index [P], rank [P], kept [num videos])``: indices into the proposals,
            0-based rank by decreasing score, and how many each video keeps.
        """
        prop, num_videos = self.proposal, len(self.ground_truth.videos) + len(self.proposal.extra_videos)
        has_gt = np.zeros(num_videos, dtype=bool)
        has_gt[self.ground_truth.video] = True
        index = np.flatnonzero(has_gt[prop.video])
        index = index[np.lexsort((-prop.score[index], prop.video[index]))]  # stable: ties keep input order
        video = prop.video[index]
        rank = np.arange(len(index)) - np.searchsorted(video, video, side="left")
        count = np.bincount(video, minlength=num_videos)
        kept = np.minimum((count * ratio).astype(np.int64), count)
        keep = rank < kept[video]
        return index[keep], rank[keep], kept

    def _curve(self):
        """``(recall [T, J], AN [J])``, by the rules of the module docstring."""
        gt, prop = self.ground_truth, self.proposal
        num_gt_videos = len(np.unique(gt.video))
        budget = self.max_avg_nr_proposals or len(prop.video) / num_gt_videos or max(self.topk)
        ratio = budget * float(num_gt_videos) / max(len(prop.video), 1)
        index, rank, kept = self._kept_proposals(ratio)
        total = int(kept.sum())
        if total == 0:
            steps = np.arange(1, budget + 1)
            return np.zeros((len(self.tiou_thresholds), len(steps))), steps.astype(np.float64)
        fraction = np.arange(1, budget + 1) / budget * (budget * float(num_gt_videos) / total)
        pair_prop, pair_gt = overlapping_pairs(gt.video, gt.start, gt.end, prop.video[index], prop.start[index],
                                               prop.end[index])
        pair_iou = segment_tiou(prop.start[index][pair_prop], prop.end[index][pair_prop], gt.start[pair_gt],
                                gt.end[pair_gt])
        first = first_hit(pair_gt, rank[pair_prop], pair_iou, self.tiou_thresholds, len(gt.video))
        gt_kept = kept[gt.video]
        usable = np.minimum((gt_kept[:, None] * fraction[None, :]).astype(np.int64), gt_kept[:, None])  # [G, J]
        recall = np.stack([(row[:, None] < usable).sum(axis=0) for row in first]) / float(len(gt.video))
        return recall, fraction * (float(total) / num_gt_videos)

    def evaluate(self) -> Dict[str, float]:
        """Compute the metrics.

        Returns:
            ``{"AUC": float, "AR@{k}": float for k in topk}``, keyed as upstream.

        Raises:
            ValueError: a ``topk`` value above the curve's length (``M`` taken from the proposals).
        """
        self.recall, self.proposals_per_video = self._curve()
        if max(self.topk) > self.recall.shape[1]:
            raise ValueError(f"topk {self.topk} exceeds the {self.recall.shape[1]} points of the AR-AN curve "
                             "(max_avg_nr_proposals unset: the average number of proposals given)")
        self.avg_recall = self.recall.mean(axis=0)
        an, ar = self.proposals_per_video, self.avg_recall
        self.auc = float((np.diff(an) * (ar[1:] + ar[:-1]) / 2.0).sum() / an[-1])
        metrics = {"AUC": self.auc}
        metrics.update({f"AR@{k}": float(self.recall[:, k - 1].mean()) for k in self.topk})
        return metrics

    def logging(self, logger: Optional[logging.Logger] = None) -> None:  # noqa: D401 - upstream name
        """Log upstream's summary lines.

        Args:
            logger: where to write; this module's logger when None.

        Raises:
            RuntimeError: :meth:`evaluate` has not been called.
        """
        if self.recall is None:
            raise RuntimeError("Recall.logging() needs evaluate() to be called first")
        log = logger if logger is not None else logging.getLogger(__name__)
        log.info("Loaded annotations from %s subset.", self.subset)
        log.info("Number of ground truth instances: %d", len(self.ground_truth.label))
        log.info("Number of predictions: %d", len(self.proposal.video))
        log.info("Fixed threshold for tiou score: %s", self.tiou_thresholds)
        log.info("AUC: %4.2f (%%)", self.auc * 100)
        for k in self.topk:
            log.info("AR@%3d is %4.2f%%", k, self.recall[:, k - 1].mean() * 100)
