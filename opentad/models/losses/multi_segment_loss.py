"""AFSD's training losses of both stages (upstream ``MultiSegmentLoss`` in ``detectors/afsd.py``).

Segments are given as distances ``(left, right)`` in frames from a prior's centre. Per video:

1. each prior is matched to the ground truth that contains its centre with the smallest length
   (:func:`match_priors`); unmatched priors are background (class 0);
2. the coarse stage is trained with a GIoU loss on the matched priors and a softmax focal loss on
   all priors; the refinement stage's positives are the matched priors whose coarse IoU reaches
   ``overlap_thresh`` (with ``loc_bounded``: at most the best IoU of the video), trained with a
   (smooth) L1 loss on the offsets in half coarse widths and the same focal loss;
3. the centerness logit of each matched prior is trained with BCE towards the IoU of the refined
   segment, which (as upstream) is not detached: its gradient reaches both stages' regressions.

Each sum is divided by the video's count of (refinement) positives (at least 1); the batch mean
is weighted by ``loc_weight`` (regressions) and ``cls_weight`` (classifications, centerness).
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.losses.softmax_focal_loss import SoftmaxFocalLoss

__all__ = ["MultiSegmentLoss", "distance_iou", "match_priors", "LEVEL_BOUNDS"]

#: per pyramid level, the (exclusive low, inclusive high) bound of a matched prior's largest distance
#: in frames when ``loc_bounded`` (upstream's ``gen_bounds``)
LEVEL_BOUNDS = ((0, 30), (15, 60), (30, 120), (60, 240), (96, 768), (256, 768))


def distance_iou(pred: torch.Tensor, target: torch.Tensor, *, generalized: bool = False) -> torch.Tensor:
    """IoU (or GIoU) of aligned segments given as distances ``(left, right)`` from one point.

    Upstream's ``iou_loss`` arithmetic: the intersection ``min(l) + min(r)`` is not clamped (it is
    negative for disjoint segments) and the union and the enclosing length are clamped to float32's
    eps, which is why :mod:`opentad.models.utils.iou_tools` (other clamps) is not used.

    Args:
        pred, target: ``[N, 2]``.
        generalized: GIoU instead of IoU.

    Returns:
        ``[N]``.
    """
    eps = torch.finfo(torch.float32).eps
    inter = torch.min(pred[:, 0], target[:, 0]) + torch.min(pred[:, 1], target[:, 1])
    union = (target[:, 0] + target[:, 1]) + (pred[:, 0] + pred[:, 1]) - inter
    ious = inter / union.clamp(min=eps)
    if not generalized:
        return ious
    enclosing = torch.max(pred[:, 0], target[:, 0]) + torch.max(pred[:, 1], target[:, 1])
    return ious - (enclosing - union) / enclosing.clamp(min=eps)


def match_priors(
    priors: torch.Tensor, truths: torch.Tensor, labels: torch.Tensor, *, clip_len: int, loc_bounded: bool
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Regression and class targets of every prior.

    Args:
        priors: ``[K, 2]`` (normalised centre, level).
        truths: ``[N, 2]`` ground truth, normalised to ``[0, 1]``.
        labels: ``[N]`` classes (1-based; 0 is background).
        clip_len: frames of the window (distances are in frames).
        loc_bounded: keep only matches whose largest distance lies within the prior level's
            :data:`LEVEL_BOUNDS`.

    Returns:
        ``loc_t [K, 2]`` distances in frames to the matched ground truth's start / end (any sign
        for background priors, zeros without ground truth) and ``conf_t [K]`` int64 classes.
    """
    num_priors = priors.shape[0]
    if truths.shape[0] == 0:  # upstream fails here; every prior is background
        return priors.new_zeros(num_priors, 2), torch.zeros(num_priors, dtype=torch.long, device=priors.device)
    centre = priors[:, :1]
    left = (centre - truths[None, :, 0]) * clip_len
    right = (truths[None, :, 1] - centre) * clip_len
    area = left + right
    never = clip_len * 2
    area[left < 0] = never
    area[right < 0] = never
    if loc_bounded:
        bounds = torch.tensor(LEVEL_BOUNDS, dtype=priors.dtype, device=priors.device)[priors[:, 1].long()]
        largest = torch.max(left, right)
        area[largest <= bounds[:, :1]] = never
        area[largest > bounds[:, 1:]] = never
    best_area, best = area.min(1)
    loc_t = torch.stack(
        [(priors[:, 0] - truths[best, 0]) * clip_len, (truths[best, 1] - priors[:, 0]) * clip_len], dim=1
    )
    conf_t = labels[best].long()
    conf_t[best_area >= never] = 0
    return loc_t, conf_t


class MultiSegmentLoss(nn.Module):
    """AFSD's coarse, refinement and centerness losses.

    Args:
        num_classes: classes, background (0) included.
        clip_len: frames of the window (the coarse head's ``frame_num``).
        overlap_thresh: coarse IoU a matched prior needs to be a refinement positive.
        negpos_ratio: kept for upstream's signature (unused, as upstream).
        loc_weight, cls_weight: weights of the regression and of the classification losses.
        loc_bounded: see :func:`match_priors`; also caps ``overlap_thresh`` at the video's best IoU.
        use_smooth_l1: smooth L1 (beta 1) instead of L1 for the refinement offsets.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        clip_len: int,
        overlap_thresh: float,
        negpos_ratio: float = 1.0,
        loc_weight: float = 1.0,
        cls_weight: float = 1.0,
        loc_bounded: bool = True,
        use_smooth_l1: bool = False,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.clip_len = clip_len
        self.overlap_thresh = overlap_thresh
        self.negpos_ratio = negpos_ratio
        self.loc_weight = loc_weight
        self.cls_weight = cls_weight
        self.loc_bounded = loc_bounded
        self.use_smooth_l1 = use_smooth_l1
        self.focal_loss = SoftmaxFocalLoss(num_classes=num_classes, alpha=0.25, balance_index=0)

    @torch.no_grad()
    def targets(self, loc_p, priors, truths, labels) -> Tuple[torch.Tensor, ...]:
        """``loc_t [K, 2]``, ``conf_t [K]``, refinement ``prop_loc_t [K, 2]`` and ``prop_conf_t [K]``.

        Args:
            loc_p: ``[K, 2]`` coarse distances of one video; priors, truths, labels: as :func:`match_priors`.
        """
        loc_t, conf_t = match_priors(priors, truths, labels, clip_len=self.clip_len, loc_bounded=self.loc_bounded)
        iou = distance_iou(loc_p, loc_t)
        prop_conf_t = conf_t.clone()
        thresh = self.overlap_thresh
        if self.loc_bounded:
            thresh = min(thresh, iou[conf_t > 0].max(0)[0] if (conf_t > 0).sum() > 0 else 2.0)
        prop_conf_t[iou < thresh] = 0
        half_width = 0.5 * (loc_p[:, 0] + loc_p[:, 1])
        prop_loc_t = (loc_t - loc_p) / half_width[:, None]
        return loc_t, conf_t, prop_loc_t, prop_conf_t

    def video_losses(self, loc_p, conf_p, prop_loc_p, prop_conf_p, center_p, priors, truths, labels) -> List:
        """Upstream's five normalised losses of one video (``[K, ...]`` inputs, see :meth:`forward`)."""
        loc_t, conf_t, prop_loc_t, prop_conf_t = self.targets(loc_p, priors, truths, labels)
        pos, prop_pos = conf_t > 0, prop_conf_t > 0
        pos_loc = loc_p[pos]
        loss_l = (1.0 - distance_iou(pos_loc, loc_t[pos], generalized=True)).sum() if pos.any() else pos_loc.sum()
        prop_fn = F.smooth_l1_loss if self.use_smooth_l1 else F.l1_loss
        prop_pos_loc = prop_loc_p[prop_pos]
        loss_prop_l = prop_fn(prop_pos_loc, prop_loc_t[prop_pos], reduction="sum") if prop_pos.any() else prop_pos_loc.sum()
        if pos.any():
            width = (pos_loc[:, 0] + pos_loc[:, 1]).unsqueeze(-1)
            refined = 0.5 * width * prop_loc_p[pos] + pos_loc
            ious = distance_iou(refined, loc_t[pos]).clamp_(min=0)  # not detached, as upstream
            loss_ct = F.binary_cross_entropy_with_logits(center_p[pos].view(-1), ious, reduction="sum")
        else:
            loss_ct = pos_loc.sum()
        loss_c = self.focal_loss(F.softmax(conf_p, dim=1), conf_t)
        loss_prop_c = self.focal_loss(F.softmax(prop_conf_p, dim=1), prop_conf_t)
        num_pos, num_prop_pos = max(pos.sum(), 1), max(prop_pos.sum(), 1)
        return [loss_l / num_pos, loss_c / num_pos, loss_ct / num_pos, loss_prop_l / num_prop_pos,
                loss_prop_c / num_prop_pos]

    def forward(
        self,
        loc_data: torch.Tensor,
        conf_data: torch.Tensor,
        prop_loc_data: torch.Tensor,
        prop_conf_data: torch.Tensor,
        center_data: torch.Tensor,
        priors: torch.Tensor,
        gt_segments: Sequence[torch.Tensor],
        gt_labels: Sequence[torch.Tensor],
    ) -> Dict[str, torch.Tensor]:
        """Losses ``loss_loc``, ``loss_cls``, ``loss_iou``, ``loss_prop_loc``, ``loss_prop_cls``.

        Args:
            loc_data: ``[B, K, 2]`` coarse distances in frames.
            conf_data: ``[B, K, num_classes]`` coarse logits.
            prop_loc_data: ``[B, K, 2]`` refinement offsets; prop_conf_data: ``[B, K, num_classes]``.
            center_data: ``[B, K, 1]`` centerness logits.
            priors: ``[K, 2]``.
            gt_segments: per video ``[N, 2]`` normalised to ``[0, 1]``.
            gt_labels: per video ``[N]``, 1-based.
        """
        per_video = [
            self.video_losses(*inputs, priors, truths, labels)
            for *inputs, truths, labels in zip(
                loc_data, conf_data, prop_loc_data, prop_conf_data, center_data, gt_segments, gt_labels
            )
        ]
        num = loc_data.size(0)
        names_weights = (("loss_loc", self.loc_weight), ("loss_cls", self.cls_weight), ("loss_iou", self.cls_weight),
                         ("loss_prop_loc", self.loc_weight), ("loss_prop_cls", self.cls_weight))
        return {name: sum(v[i] for v in per_video) / num * w for i, (name, w) in enumerate(names_weights)}
