"""SimOTA-style assignment of anchor-free points (TemporalMaxer; after YOLOX's SimOTA as upstream OpenTAD adapts it)."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from opentad.models.dense_heads.point_assigner import candidate_mask, point_distances
from opentad.models.losses.focal_loss import sigmoid_focal_loss
from opentad.registry import LOSSES

__all__ = ["AnchorFreeSimOTAAssigner", "offset_diou_cost"]

INF = float("inf")


def offset_diou_cost(pred_offsets: torch.Tensor, gt_offsets: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``1 - DIoU`` of segments given as distances ``(left, right)`` from one shared point.

    With ``l``/``r`` the predicted and ``l'``/``r'`` the target distances (float32):
    ``inter = min(l, l') + min(r, r')``, ``union = l + r + l' + r' - inter``,
    ``enclosing = max(l, l') + max(r, r')``, ``rho = (r - l - r' + l') / 2`` and
    ``cost = 1 - inter / max(union, eps) + (rho / max(enclosing, eps))^2``.

    Args:
        pred_offsets: ``[..., 2]`` non-negative distances.
        gt_offsets: ``[..., 2]`` non-negative distances.
        eps: lower bound of the union and of the enclosing length.

    Returns:
        ``[...]`` float32 costs.
    """
    lp, rp = pred_offsets[..., 0].float(), pred_offsets[..., 1].float()
    lg, rg = gt_offsets[..., 0].float(), gt_offsets[..., 1].float()
    inter = torch.min(rp, rg) + torch.min(lp, lg)
    union = (lp + rp) + (lg + rg) - inter
    enclosing = torch.max(lp, lg) + torch.max(rp, rg)
    rho = 0.5 * (rp - lp - rg + lg)
    return 1.0 - inter / union.clamp(min=eps) + torch.square(rho / enclosing.clamp(min=eps))


@LOSSES.register_module()
class AnchorFreeSimOTAAssigner:
    """Assign ground-truth segments to pyramid points by a classification + localisation cost.

    For one video, over its valid points:

    * a point is *inside* segment ``n`` when both its distances to the boundaries
      are >= 0; elsewhere the cost is infinite;
    * ``cost[p, n] = cls_weight * sum_c focal(logit[p, c], onehot(label_n)[c])
      + iou_weight * offset_diou_cost(pred[p], (p - a_n, b_n - p) / stride)``;
    * the points assigned to ``n`` are those with a finite cost that are also
      candidates by ActionFormer's centre-sampling rule (radius ``center_radius``
      strides, regression range, near-shortest segments; :func:`candidate_mask`);
    * each point regresses to the segment of least cost (``argmin_n cost``);
    * weights: 1 for points inside no segment, ``confuse_weight`` for points
      inside some, then 1 again for the ``floor(keep_percent * K_n)`` points of
      least cost of every segment ``n``, ``K_n`` its number of points inside.

    Args:
        center_radius: centre-sampling radius in strides.
        iou_weight: weight of the localisation cost.
        cls_weight: weight of the classification cost.
        keep_percent: share of each segment's inside points that keep weight 1.
        confuse_weight: weight of the other inside points.
    """

    def __init__(
        self,
        *,
        center_radius: float = 2.5,
        iou_weight: float = 3.0,
        cls_weight: float = 1.0,
        keep_percent: float = 0.65,
        confuse_weight: float = 0.1,
    ):
        self.center_radius = center_radius
        self.iou_weight = iou_weight
        self.cls_weight = cls_weight
        self.keep_percent = keep_percent
        self.confuse_weight = confuse_weight

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(center_radius={self.center_radius}, iou_weight={self.iou_weight}, "
            f"cls_weight={self.cls_weight}, keep_percent={self.keep_percent}, confuse_weight={self.confuse_weight})"
        )

    @torch.no_grad()
    def assign(
        self,
        out_scores: torch.Tensor,
        points: torch.Tensor,
        out_offsets: torch.Tensor,
        gt_bboxes: torch.Tensor,
        gt_labels: torch.Tensor,
        valid_masks: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Assignment of one video.

        Args:
            out_scores: ``[P, C]`` class logits of every point.
            points: ``[P, 4]`` rows ``(position, r_min, r_max, stride)``.
            out_offsets: ``[P, 2]`` predicted distances in strides.
            gt_bboxes: ``[N, 2]`` segments in input steps.
            gt_labels: ``[N]`` class indices.
            valid_masks: ``[P]`` bool, the points that are not padding.

        Returns:
            ``(matching [P, N] float in {0, 1}, min_inds [P] long, weights [P] float)``;
            padded points get 0 everywhere.
        """
        num_pts, num_gt = points.shape[0], gt_bboxes.shape[0]
        matching = points.new_zeros((num_pts, num_gt), dtype=torch.float32)
        min_inds = torch.zeros(num_pts, dtype=torch.long, device=points.device)
        weights = torch.zeros(num_pts, dtype=torch.float32, device=points.device)
        if num_gt == 0:  # upstream fails here; no segment: no match, every valid point weighs 1
            weights[valid_masks] = 1.0
            return matching, min_inds, weights

        valid_points = points[valid_masks]
        cost = self.cost_matrix(out_scores[valid_masks], valid_points, out_offsets[valid_masks], gt_bboxes, gt_labels)
        candidate, _ = candidate_mask(valid_points, gt_bboxes, center_sample_radius=self.center_radius)
        inside = cost < INF
        matching[valid_masks] = (inside & candidate).float()
        min_inds[valid_masks] = cost.min(dim=1).indices
        weights[valid_masks] = self.point_weights(cost, inside)
        return matching, min_inds, weights

    def cost_matrix(
        self,
        scores: torch.Tensor,
        points: torch.Tensor,
        offsets: torch.Tensor,
        gt_bboxes: torch.Tensor,
        gt_labels: torch.Tensor,
    ) -> torch.Tensor:
        """``[P, N]`` costs of the valid points (``scores [P, C]``, ``points [P, 4]``, ``offsets [P, 2]``).

        The focal term of a point depends only on the segment's class, so it is
        computed once per distinct class (the same element-wise values and sums).
        """
        gt_offsets = point_distances(points, gt_bboxes) / points[:, 3, None, None]  # [P, N, 2]
        outside = (gt_offsets < 0).any(dim=-1)  # [P, N]
        pred = offsets[:, None, :].expand_as(gt_offsets).masked_fill(outside[..., None], 0.0)
        iou_cost = offset_diou_cost(pred, gt_offsets.masked_fill(outside[..., None], 0.0))
        iou_cost = iou_cost.masked_fill(outside, INF)

        classes, inverse = gt_labels.long().unique(return_inverse=True)
        one_hot = F.one_hot(classes, scores.shape[-1]).float()  # [L, C]
        # contiguous [P, L, C] operands (as upstream's repeat), so the sums over C run as upstream's
        targets = one_hot[None].repeat(len(scores), 1, 1)
        focal = sigmoid_focal_loss(scores[:, None, :].repeat(1, len(classes), 1), targets)
        cls_cost = focal.sum(-1)[:, inverse]  # [P, N]
        return cls_cost * self.cls_weight + iou_cost * self.iou_weight

    def point_weights(self, cost: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        """``[P]`` weights from the costs ``[P, N]`` and the inside pairs ``[P, N]`` (see the class doc)."""
        weights = cost.new_ones(cost.shape[0])
        weights[inside.any(dim=1)] = self.confuse_weight
        keep = (inside.sum(dim=0) * self.keep_percent).long()  # floor, as upstream's cast
        for n in range(cost.shape[1]):
            weights[cost[:, n].topk(int(keep[n]), largest=False).indices] = 1.0
        return weights
