"""TemporalMaxer's head: the anchor-free towers trained with SimOTA-style assignment and point weights."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Sequence, Tuple

import torch
import torch.nn.functional as F

from opentad.models.dense_heads.anchor_free_head import PointHead
from opentad.models.dense_heads.point_assigner import point_distances
from opentad.models.utils.bbox_tools import distance_to_segment
from opentad.registry import HEADS, LOSSES, build

if TYPE_CHECKING:  # the losses package imports dense_heads (the assigner reuses its point rules)
    from opentad.models.losses.assigner.anchor_free_simota_assigner import AnchorFreeSimOTAAssigner

__all__ = ["TemporalMaxerHead"]


@HEADS.register_module()
class TemporalMaxerHead(PointHead):
    """:class:`PointHead` whose targets come from an assigner that sees the predictions.

    Per video, ``assigner.assign(logits, points, distances, segments, labels, mask)``
    gives the point-segment matching, each point's regression segment and a
    weight per point. Classification targets are the matched segments' classes
    (clamped to 1), regression targets the distances in strides to the chosen
    segment. Both losses weight each positive point by its weight (other valid
    points weigh 1). As upstream, the classification loss is always divided by
    the running normaliser (buffer ``loss_normalizer``), the regression loss by
    the running normaliser in training and by the number of positives in eval mode.

    Args:
        assigner: e.g. ``AnchorFreeSimOTAAssigner`` (built from the ``LOSSES`` registry).
        **kwargs: the keys of :class:`PointHead` (as upstream, not the centre-sampling keys
            of :class:`AnchorFreeHead`).
    """

    def __init__(self, *, assigner: AnchorFreeSimOTAAssigner, **kwargs: Any):
        super().__init__(**kwargs)
        self.assigner = assigner

    @classmethod
    def from_config(
        cls,
        *,
        prior_generator: Mapping[str, Any],
        loss: Mapping[str, Mapping[str, Any]],
        assigner: Mapping[str, Any],
        **kwargs: Any,
    ) -> Dict[str, Any]:
        """As :meth:`PointHead.from_config`, plus the assigner (registry ``LOSSES``, as upstream).

        Raises:
            ConfigError: ``loss`` lacks or adds keys besides ``cls_loss`` / ``reg_loss``; a bad assigner config.
        """
        parts = super().from_config(prior_generator=prior_generator, loss=loss)
        parts["assigner"] = build(assigner, LOSSES)
        return parts

    def losses(self, cls_pred, reg_pred, mask_list, points, gt_segments, gt_labels) -> Dict[str, torch.Tensor]:
        """Weighted focal loss on valid points, weighted IoU-type loss on positives.

        Arguments (per level ``[B, C, T_l]`` logits, ``[B, 2, T_l]`` distances, ``[B, T_l]`` masks,
        ``[T_l, 4]`` points; per sample ground truth) and result as :meth:`AnchorFreeHead.losses`.
        """
        points = torch.cat(points, dim=0)
        logits = torch.cat(cls_pred, dim=-1).transpose(1, 2)  # [B, P, C]
        distances = torch.cat(reg_pred, dim=-1).transpose(1, 2)  # [B, P, 2]
        valid = torch.cat(list(mask_list), dim=1)
        gt_cls, gt_reg, weights = self.assign_targets(points, valid, logits, distances, gt_segments, gt_labels)
        pos_mask, num_pos, reg_normalizer = self.positives(gt_cls, valid)
        cls_normalizer = float(self.loss_normalizer)

        point_weights = torch.where(pos_mask, weights, torch.ones_like(weights))[valid]
        cls_loss = self.cls_loss(logits[valid], self.smoothed(gt_cls[valid]), reduction="none")
        cls_loss = (cls_loss * point_weights[:, None]).sum() / cls_normalizer

        pred_segments = distance_to_segment(points, distances)[pos_mask]
        if num_pos == 0:
            reg_loss = pred_segments.sum() * 0
        else:
            target_segments = distance_to_segment(points, gt_reg)[pos_mask]
            reg_loss = self.reg_loss(pred_segments, target_segments, reduction="none")
            reg_loss = (reg_loss * weights[pos_mask]).sum() / reg_normalizer
        return self.weighted(cls_loss, reg_loss)

    @torch.no_grad()
    def assign_targets(
        self,
        points: torch.Tensor,
        valid: torch.Tensor,
        logits: torch.Tensor,
        distances: torch.Tensor,
        gt_segments: Sequence[torch.Tensor],
        gt_labels: Sequence[torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Targets and weights of all points of every sample.

        Args:
            points: ``[P, 4]``.
            valid: ``[B, P]`` bool.
            logits: ``[B, P, C]`` predicted logits.
            distances: ``[B, P, 2]`` predicted distances in strides.
            gt_segments, gt_labels: per sample ``[N_i, 2]`` and ``[N_i]``.

        Returns:
            ``(cls_targets [B, P, C], reg_targets [B, P, 2] in strides, weights [B, P])``.
        """
        cls_targets: List[torch.Tensor] = []
        reg_targets: List[torch.Tensor] = []
        weights: List[torch.Tensor] = []
        for mask, scores, offsets, segments, labels in zip(valid, logits, distances, gt_segments, gt_labels):
            segments, labels = segments.to(points), labels.to(points.device)
            matching, min_inds, weight = self.assigner.assign(scores, points, offsets, segments, labels, mask)
            weights.append(weight)
            if segments.shape[0] == 0:
                cls_targets.append(points.new_zeros((points.shape[0], self.num_classes)))
                reg_targets.append(points.new_zeros((points.shape[0], 2)))
                continue
            one_hot = F.one_hot(labels.long(), self.num_classes).to(points.dtype)
            cls_targets.append((matching @ one_hot).clamp_(0.0, 1.0))
            chosen = point_distances(points, segments)[torch.arange(points.shape[0], device=points.device), min_inds]
            reg_targets.append(chosen / points[:, 3, None])
        return torch.stack(cls_targets), torch.stack(reg_targets), torch.stack(weights)
