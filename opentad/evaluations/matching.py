"""Vectorised detection matching and ActivityNet interpolated average precision.

Everything works on flat arrays, all classes and all tIoU thresholds at once.
Predictions are identified by their *rank*: the caller orders them by class,
then by decreasing score, then by input order (ties), and passes indices into
that order.

Matching rule (ActivityNet / upstream OpenTAD): predictions are visited by
rank; at each threshold a prediction takes, among the not yet matched
ground-truth actions of its class and video with tIoU >= threshold, the one
with the highest tIoU (equal tIoU: the lower ground-truth index); if there is
none it is a false positive. This serial greedy assignment is the unique
stable matching when every ground truth prefers the better-ranked prediction,
so :func:`greedy_match` computes it with parallel proposal rounds
(Gale-Shapley) instead of a Python loop over predictions.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

__all__ = [
    "segment_tiou", "overlapping_pairs", "greedy_match", "interpolated_ap", "first_hit", "topkx_recall", "NO_HIT",
]

NO_HIT = np.iinfo(np.int64).max


def segment_tiou(pred_start, pred_end, gt_start, gt_end) -> np.ndarray:
    """Element-wise temporal IoU, as upstream computes it (union clipped at 1e-8).

    Args:
        pred_start, pred_end, gt_start, gt_end: broadcastable float64 arrays.
    """
    inter = (np.minimum(pred_end, gt_end) - np.maximum(pred_start, gt_start)).clip(0)
    union = (gt_end - gt_start) + (pred_end - pred_start) - inter
    return inter / union.clip(1e-8)


def overlapping_pairs(
    gt_group: np.ndarray,
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    pred_group: np.ndarray,
    pred_start: np.ndarray,
    pred_end: np.ndarray,
) -> Tuple[np.ndarray, np.ndarray]:
    """All (prediction, ground truth) pairs of the same group that may overlap.

    A group is a (class, video) pair encoded as a non-negative integer. Every
    pair with a positive intersection is returned (plus a few without, e.g.
    around nested ground truth); pairs of different groups never are. The
    searches use exact integer keys ``group * S + rank``, where ``rank``
    counts distinct ground-truth boundaries, so no floating-point offset can
    blur group boundaries.

    Args:
        gt_group, gt_start, gt_end: ``[G]`` arrays.
        pred_group, pred_start, pred_end: ``[N]`` arrays.

    Returns:
        ``(pair_pred, pair_gt)``: ``[K]`` int64 indices into the inputs, sorted
        by prediction.
    """
    starts, ends = np.unique(gt_start), np.unique(gt_end)
    s_scale, e_scale = np.int64(len(starts) + 1), np.int64(len(ends) + 1)
    gt_group, pred_group = gt_group.astype(np.int64), pred_group.astype(np.int64)
    start_key = gt_group * s_scale + np.searchsorted(starts, gt_start)
    order = np.argsort(start_key, kind="stable")
    # Within a group, ground truth sorted by start: those before `lo` end at or
    # before the prediction starts (running max of ends), those from `hi` on
    # start at or after it ends.
    cummax_end_key = np.maximum.accumulate((gt_group * e_scale + np.searchsorted(ends, gt_end))[order])
    hi = np.searchsorted(start_key[order], pred_group * s_scale + np.searchsorted(starts, pred_end, side="left"))
    lo = np.searchsorted(cummax_end_key, pred_group * e_scale + np.searchsorted(ends, pred_start, side="right"))
    counts = np.maximum(hi - lo, 0)
    pair_pred = np.repeat(np.arange(len(pred_start), dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    pos = np.repeat(lo - first, counts) + np.arange(int(counts.sum()), dtype=np.int64)
    return pair_pred, order[pos]


def _proposal_entries(pair_pred: np.ndarray, pair_iou: np.ndarray, thresholds: np.ndarray):
    """One entry per (threshold, prediction with a candidate), for :func:`greedy_match`.

    ``pair_*`` must be sorted by prediction then decreasing tIoU, so the
    candidates valid at a threshold are a prefix of the prediction's run.
    """
    run_start = np.flatnonzero(np.r_[True, pair_pred[1:] != pair_pred[:-1]]) if len(pair_pred) else np.zeros(0, int)
    thr, pred, first, length = [], [], [], []
    for t_idx, t in enumerate(thresholds):
        n_valid = np.add.reduceat((pair_iou >= t).astype(np.int64), run_start) if len(run_start) else run_start
        keep = n_valid > 0
        thr.append(np.full(int(keep.sum()), t_idx, dtype=np.int64))
        pred.append(pair_pred[run_start[keep]])
        first.append(run_start[keep])
        length.append(n_valid[keep])
    return tuple(np.concatenate(x).astype(np.int64) for x in (thr, pred, first, length))


def _candidate_order(pair_pred: np.ndarray, pair_gt: np.ndarray, pair_iou: np.ndarray) -> np.ndarray:
    """Order of pairs by (prediction, decreasing tIoU, ground-truth index).

    Most predictions have a single candidate, so when the pairs already come
    grouped by prediction only the runs longer than one are sorted.
    """
    if len(pair_pred) < 2 or not (pair_pred[1:] >= pair_pred[:-1]).all():
        return np.lexsort((pair_gt, -pair_iou, pair_pred))
    run_start = np.flatnonzero(np.r_[True, pair_pred[1:] != pair_pred[:-1]])
    run_len = np.diff(np.r_[run_start, len(pair_pred)])
    idx = np.flatnonzero(np.repeat(run_len > 1, run_len))
    order = np.arange(len(pair_pred))
    order[idx] = idx[np.lexsort((pair_gt[idx], -pair_iou[idx], pair_pred[idx]))]
    return order


def greedy_match(
    pair_pred: np.ndarray,
    pair_gt: np.ndarray,
    pair_iou: np.ndarray,
    thresholds: Sequence[float],
    num_pred: int,
    num_gt: int,
) -> np.ndarray:
    """True positives of the score-ordered greedy matching, at every threshold.

    Args:
        pair_pred: ``[K]`` prediction ranks (lower rank = visited first).
        pair_gt: ``[K]`` ground-truth indices.
        pair_iou: ``[K]`` tIoU of each pair; pairs of different classes or
            videos must not be given, pairs below every threshold may be.
        thresholds: ``T`` tIoU thresholds.
        num_pred, num_gt: sizes of the rank and ground-truth index spaces.

    Returns:
        ``[T, num_pred]`` bool, True where the prediction is a true positive.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    order = _candidate_order(pair_pred, pair_gt, pair_iou)
    pair_pred, pair_gt, pair_iou = pair_pred[order], pair_gt[order], pair_iou[order]
    e_thr, e_pred, e_first, e_len = _proposal_entries(pair_pred, pair_iou, thresholds)
    ptr = np.zeros(len(e_thr), dtype=np.int64)
    best = np.full(len(thresholds) * num_gt, np.iinfo(np.int64).max, dtype=np.int64)
    holder = np.full(len(thresholds) * num_gt, -1, dtype=np.int64)
    active = np.arange(len(e_thr), dtype=np.int64)
    while active.size:
        # Every free prediction proposes to its best candidate not yet refused;
        # each ground truth keeps the best-ranked proposer it has seen.
        keys = e_thr[active] * num_gt + pair_gt[e_first[active] + ptr[active]]
        np.minimum.at(best, keys, e_pred[active])
        won = best[keys] == e_pred[active]
        previous = holder[keys[won]]
        holder[keys[won]] = active[won]
        refused = np.concatenate([active[~won], previous[previous >= 0]])
        ptr[refused] += 1
        active = refused[ptr[refused] < e_len[refused]]
    tp = np.zeros((len(thresholds), num_pred), dtype=bool)
    held = holder[holder >= 0]
    tp[e_thr[held], e_pred[held]] = True
    return tp


def interpolated_ap(tp: np.ndarray, num_positives: int) -> np.ndarray:
    """ActivityNet interpolated AP of ranked detections, per threshold.

    With sentinels precision ``[0, p_1..p_N, 0]`` and recall
    ``[0, r_1..r_N, 1]``, precision is replaced by its running maximum from
    the right (the envelope) and AP is the sum of recall increments times the
    envelope where recall changes. No detection gives 0.

    Args:
        tp: ``[T, N]`` bool, detections in rank order.
        num_positives: number of ground-truth actions of the class (> 0).

    Returns:
        ``[T]`` float64.
    """
    num_thr, num_det = tp.shape
    cum_tp = np.cumsum(tp, axis=1, dtype=np.float64)
    cum_fp = np.arange(1, num_det + 1, dtype=np.float64) - cum_tp
    zeros = np.zeros((num_thr, 1))
    precision = np.hstack([zeros, cum_tp / (cum_tp + cum_fp), zeros])
    recall = np.hstack([zeros, cum_tp / float(num_positives), np.ones((num_thr, 1))])
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    step = recall[:, 1:] - recall[:, :-1]
    return np.where(step != 0, step * envelope[:, 1:], 0.0).sum(axis=1)


def first_hit(
    pair_gt: np.ndarray, pair_pos: np.ndarray, pair_iou: np.ndarray, thresholds: Sequence[float], num_gt: int
) -> np.ndarray:
    """Best (lowest) position of a prediction that covers each ground truth, per threshold.

    Args:
        pair_gt: ``[K]`` ground-truth index of each candidate pair.
        pair_pos: ``[K]`` position of the pair's prediction (its rank among the
            predictions that may cover this ground truth, e.g. within its video).
        pair_iou: ``[K]`` tIoU of each pair.
        thresholds: ``T`` tIoU thresholds.
        num_gt: ``G``, the size of the ground-truth index space.

    Returns:
        ``[T, G]`` int64: the lowest ``pair_pos`` among pairs with tIoU >= the
        threshold, ``NO_HIT`` where there is none.
    """
    first = np.full((len(thresholds), num_gt), NO_HIT, dtype=np.int64)
    for t_idx, t in enumerate(thresholds):
        valid = pair_iou >= t
        np.minimum.at(first[t_idx], pair_gt[valid], pair_pos[valid])
    return first


def topkx_recall(
    pair_pred: np.ndarray,
    pair_gt: np.ndarray,
    pair_iou: np.ndarray,
    pred_pos: np.ndarray,
    gt_group_size: np.ndarray,
    thresholds: Sequence[float],
    top_k: Sequence[int],
) -> np.ndarray:
    """Which ground truth is found by the top ``k * x`` predictions of its video.

    ``x`` is the number of ground-truth actions of the same class in the same
    video; a ground truth counts as found at (threshold, k) when one of the
    first ``k * x`` predictions of its class and video (in rank order) has
    tIoU >= threshold with it.

    Args:
        pair_pred, pair_gt, pair_iou: ``[K]`` candidate pairs (same class and video).
        pred_pos: ``[N]`` position of each prediction among its class and video, by rank.
        gt_group_size: ``[G]`` the ``x`` of each ground truth.

    Returns:
        ``[T, len(top_k), G]`` bool.
    """
    first = first_hit(pair_gt, pred_pos[pair_pred], pair_iou, thresholds, len(gt_group_size))
    limit = np.asarray(top_k, dtype=np.int64)[:, None] * gt_group_size[None, :]
    return first[:, None, :] < limit[None, :, :]
