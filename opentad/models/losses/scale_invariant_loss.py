"""TSI's scale-invariant loss (Liu et al., ACCV 2020) for the proposal-map confidence."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.utils.iou_tools import compute_iou_torch
from opentad.registry import LOSSES

__all__ = ["ScaleInvariantLoss"]


@LOSSES.register_module()
class ScaleInvariantLoss(nn.Module):
    """Binary cross-entropy on proposal confidences, weighted so that every action counts the same.

    A proposal is positive when its best IoU with a ground truth exceeds
    ``pos_thresh``. A positive matched (by that best IoU) to ground truth ``g``
    weighs ``1 / (number of proposals with IoU > pos_thresh against g)``, so a
    short action with few positive proposals weighs as much as a long one; the
    negatives of a sample share ``number of ground truths / number of
    negatives``. The losses are further weighed ``alpha`` (positives) and
    ``1 - alpha`` (negatives), summed and divided by the batch size. A batch
    without positives or without negatives gets the plain mean BCE.

    Args:
        pos_thresh: IoU above which a proposal is positive.
        alpha: weight of the positive term.
    """

    def __init__(self, *, pos_thresh: float = 0.9, alpha: float = 0.2):
        super().__init__()
        self.pos_thresh = pos_thresh
        self.alpha = alpha

    @torch.no_grad()
    def prepare_targets(
        self, proposals: torch.Tensor, gt_segments: Sequence[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Best IoU of every proposal and its scale-invariant weight, per sample.

        Args:
            proposals: ``[N, 2]`` (start, end) of the valid map cells.
            gt_segments: ``B`` tensors ``[M_b, 2]``.

        Returns:
            ``(gt_ious [B, N], weights [B, N])``. A sample without ground truth
            has IoU 0 and weight 0 everywhere (upstream cannot take one).
        """
        proposals = proposals.to(gt_segments[0].device)
        ious: List[torch.Tensor] = []
        weights: List[torch.Tensor] = []
        for gt in gt_segments:
            pair_iou = compute_iou_torch(gt, proposals)  # [N, M]
            if pair_iou.shape[1] == 0:
                pair_iou = pair_iou.new_zeros(pair_iou.shape[0], 1)
            best_iou, best_gt = pair_iou.max(dim=1)
            positive = best_iou > self.pos_thresh
            per_gt = (pair_iou > self.pos_thresh).sum(dim=0).clip(min=1)  # positives of each ground truth
            weight = torch.ones_like(best_iou)
            weight[positive] = 1 / per_gt[best_gt[positive]]
            weight[~positive] = len(gt) / torch.sum(~positive)
            ious.append(best_iou)
            weights.append(weight)
        return torch.stack(ious), torch.stack(weights)

    def forward(
        self, pred: torch.Tensor, proposals: torch.Tensor, gt_segments: Sequence[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The loss and the targets it used.

        Args:
            pred: ``[B, N]`` confidences after the sigmoid.
            proposals: ``[N, 2]`` the proposals scored (valid map cells).
            gt_segments: ``B`` tensors ``[M_b, 2]`` in the proposals' units.

        Returns:
            ``(loss, gt_ious [B, N])``; the IoUs are the regression targets of
            the same head. (Upstream returns the bare loss when the batch has
            no positive or no negative, which its caller cannot unpack.)
        """
        gt_ious, weights = self.prepare_targets(proposals, gt_segments)
        pmask = (gt_ious > self.pos_thresh).float()
        nmask = (gt_ious <= self.pos_thresh).float()
        loss = F.binary_cross_entropy(pred, pmask, reduction="none")
        if pmask.sum() == 0 or nmask.sum() == 0:
            return loss.mean(), gt_ious
        coef = self.alpha * pmask + (1 - self.alpha) * nmask
        return torch.sum(coef * loss * weights) / pred.shape[0], gt_ious

    def extra_repr(self) -> str:
        return f"pos_thresh={self.pos_thresh}, alpha={self.alpha}"
