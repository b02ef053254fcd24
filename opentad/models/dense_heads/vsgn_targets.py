"""VSGN's anchor arithmetic, shared by its first stage (:class:`VSGNRPNHead`) and second stage (:class:`VSGNRoIHead`).

Upstream's conventions are kept exactly, since they decide targets and losses:

* anchors and decoded segments use the "+1" length of detectron's boxes
  (``length = end - start + 1``), the ground truth does not;
* matching keeps, for each ground truth, the predictions of highest overlap
  even below the threshold (detectron's ``allow_low_quality_matches``);
* the GIoU loss orders each predicted pair and adds ``1e-7`` to the union and
  to the enclosing length.
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch

__all__ = [
    "ForegroundEMA",
    "vsgn_anchors",
    "decode_offsets",
    "anchor_gt_iou",
    "match_predictions",
    "prepare_targets",
    "giou_loss",
]

#: offsets are divided by these (centre, log-width) before decoding
OFFSET_WEIGHTS = (10.0, 5.0)
MAX_LOG_SCALE = math.log(1000.0 / 16)


def vsgn_anchors(pyramid_levels: Sequence[int], tscale: int, anchor_scale: Sequence[float]) -> List[torch.Tensor]:
    """Anchors of every level, ``[ceil(tscale / stride) * len(anchor_scale), 2]`` each, position-major.

    At position ``p`` of a level of stride ``s`` the anchor of scale ``k`` is
    centred at ``p s + s / 2`` and has the "+1" length ``k s``:
    ``[p s + s/2 - (k s - 1)/2, p s + s/2 + (k s - 1)/2]``.
    """
    scales = torch.tensor(anchor_scale, dtype=torch.float32)
    anchors = []
    for stride in pyramid_levels:
        base = torch.tensor([1.0, stride]) - 0.5
        length = base[1] - base[0] + 1
        centre = base[0] + 0.5 * (length - 1)
        half = 0.5 * (length * scales - 1)
        base_anchors = torch.stack((centre - half, centre + half), dim=-1)  # [A, 2]
        size = math.ceil(tscale / stride)
        shifts = torch.arange(0, size * stride, step=stride, dtype=torch.float32)
        anchors.append((shifts[:, None, None] + base_anchors[None]).reshape(-1, 2))
    return anchors


def decode_offsets(offsets: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Segments ``[..., 2]`` from ``(centre, log-width)`` offsets ``[..., 2]`` and broadcastable anchors.

    ``centre = dx / 10 * L + c``, ``width = exp(min(dw / 5, log(1000/16))) * L``
    with the anchor's "+1" length ``L`` and centre ``c``; the segment is
    ``centre -+ (width - 1) / 2``.
    """
    anchors = anchors.to(offsets.dtype)
    length = anchors[..., 1] - anchors[..., 0] + 1
    centre = (anchors[..., 1] + anchors[..., 0]) / 2
    dx = offsets[..., 0] / OFFSET_WEIGHTS[0]
    dw = (offsets[..., 1] / OFFSET_WEIGHTS[1]).clamp(max=MAX_LOG_SCALE)
    pred_centre = dx * length + centre
    half = 0.5 * (torch.exp(dw) * length - 1)
    return torch.stack((pred_centre - half, pred_centre + half), dim=-1)


def anchor_gt_iou(anchors: torch.Tensor, gts: torch.Tensor) -> torch.Tensor:
    """Overlap ``[N, M]`` of anchors ``[N, 2]`` ("+1" length) and ground truth ``[M, 2]`` (plain length)."""
    inter = (torch.min(anchors[:, 1:], gts[:, 1]) - torch.max(anchors[:, :1], gts[:, 0])).clamp(min=0)
    union = ((anchors[:, 1:] - anchors[:, :1] + 1) + gts[:, 1] - gts[:, 0] - inter).clamp(min=0)
    return inter / union


def match_predictions(iou: torch.Tensor, iou_thr: float) -> torch.Tensor:
    """Ground-truth index of every prediction, -1 for none.

    A prediction takes its best ground truth when that overlap reaches
    ``iou_thr``; in addition, each prediction that attains some ground truth's
    highest overlap (ties included, even zero) takes its own best ground truth.

    Args:
        iou: ``[N, M]`` overlaps (predictions, ground truths), ``M >= 1``.
        iou_thr: the threshold.

    Returns:
        ``[N]`` long in ``[-1, M)``.
    """
    best, matches = iou.max(dim=1)
    kept = torch.where(best < iou_thr, torch.full_like(matches, -1), matches)
    attains_gt_best = (iou == iou.max(dim=0, keepdim=True)[0]).any(dim=1)
    return torch.where(attains_gt_best, matches, kept)


@torch.no_grad()
def prepare_targets(
    anchors: torch.Tensor, gt_segments: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor], iou_thr: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Classification and regression targets of every anchor (or predicted segment) of the batch.

    Args:
        anchors: ``[B, N, 2]``.
        gt_segments: per video ``[M_b, 2]``.
        gt_labels: per video ``[M_b]`` class indices (0-based; the targets shift them by one,
            0 being the background).
        iou_thr: matching threshold (:func:`match_predictions`).

    Returns:
        ``(labels [B * N] int32, 0 for the background; segments [B * N, 2])``: unmatched rows take the
        first ground truth as regression target (upstream; only positives are used).

    Raises:
        ValueError: a video without ground truth (its anchors cannot be matched).
    """
    labels, segments = [], []
    for anchor, gt, label in zip(anchors, gt_segments, gt_labels):
        if gt.shape[0] == 0:
            raise ValueError("VSGN: a training sample has no ground-truth segment; anchors cannot be matched")
        matched = match_predictions(anchor_gt_iou(anchor, gt), iou_thr)
        cls = (label.to(gt.dtype) + 1)[matched.clamp(min=0)]
        labels.append(torch.where(matched < 0, torch.zeros_like(cls), cls).to(torch.int32))
        segments.append(gt[matched.clamp(min=0)])
    return torch.cat(labels), torch.cat(segments)


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed ``1 - GIoU`` of predicted ``[N, 2]`` (each ordered first) and target ``[N, 2]`` segments.

    Plain lengths; ``1e-7`` is added to the union and to the enclosing length.

    Raises:
        ValueError: no pair (upstream asserts the same).
    """
    if pred.shape[0] == 0:
        raise ValueError("VSGN giou_loss: no positive segment to regress")
    p1, p2 = torch.min(pred[:, 0], pred[:, 1]), torch.max(pred[:, 0], pred[:, 1])
    t1, t2 = target[:, 0], target[:, 1]
    i1, i2 = torch.max(p1, t1), torch.min(p2, t2)
    inter = torch.where(i2 > i1, i2 - i1, torch.zeros_like(i1))
    enclosing = (torch.max(p2, t2) - torch.min(p1, t1)) + 1e-7
    union = (p2 - p1) + (t2 - t1) - inter + 1e-7
    giou = inter / union - (enclosing - union) / enclosing
    return (1 - giou).sum()


class ForegroundEMA:
    """Upstream's loss normaliser: an EMA (momentum 0.9, start 100) of the number of positives (at least 1)."""

    def __init__(self, start: float = 100.0, momentum: float = 0.9):
        self.value = start
        self.momentum = momentum

    def update(self, num_pos: int) -> float:
        """Fold in this batch's count of positives; return the new value."""
        self.value = self.momentum * self.value + (1 - self.momentum) * max(num_pos, 1)
        return self.value
