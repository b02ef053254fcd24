"""TriDet's Trident head: centre-offset bins refined by start and end boundary heads.

The anchor-free head (:class:`AnchorFreeHead`: towers, targets, focal loss,
loss normaliser) plus two boundary towers and the Trident decoding. Keys and
arithmetic are upstream OpenTAD's (``opentad/models/dense_heads/tridet_head.py``
there), quirks included (see :meth:`TriDetHead.losses`).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.dense_heads.anchor_free_head import AnchorFreeHead
from opentad.models.utils.bbox_tools import distance_to_segment
from opentad.registry import HEADS, LOSSES, ConfigError, build

__all__ = ["TriDetHead", "boundary_windows", "decode_trident"]

logger = logging.getLogger(__name__)


def boundary_windows(logits: torch.Tensor, num_bins: int, *, start: bool) -> torch.Tensor:
    """The ``num_bins + 1`` boundary logits around every step.

    Args:
        logits: ``[B, C, T]`` start (or end) logits of one level.
        num_bins: ``n``.
        start: start logits look left, end logits look right.

    Returns:
        ``[B, T, C, n + 1]``: entry ``j`` at step ``t`` is the logit at
        ``t - n + j`` (start) or ``t + j`` (end), 0 outside ``[0, T)``.
    """
    padded = F.pad(logits, (num_bins, 0) if start else (0, num_bins))
    return padded.unfold(-1, num_bins + 1, 1).permute(0, 2, 1, 3)


def decode_trident(offsets: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Expected boundary distances of the Trident head, in strides.

    ``P_left = softmax_j(left[..., j] + offsets[..., 0, j])`` and the distance
    is ``sum_j P_left[j] (n - j)``; on the right ``sum_j P_right[j] j``. As
    upstream, entries where ``P_right`` is NaN are zeroed in both distributions.

    Args:
        offsets: ``[B, T, 2, n + 1]`` centre-offset logits (left, right).
        left, right: ``[B, T, C, n + 1]`` boundary windows (:func:`boundary_windows`).

    Returns:
        ``[B, T, C, 2]`` (left, right) distances.
    """
    left_dis = torch.softmax(left + offsets[:, :, :1, :], dim=-1)
    right_dis = torch.softmax(right + offsets[:, :, 1:, :], dim=-1)
    bins = left_dis.shape[-1]
    left_idx = torch.arange(bins - 1, -1, -1, device=left.device, dtype=torch.float)
    right_idx = torch.arange(bins, device=right.device, dtype=torch.float)
    nan = torch.isnan(right_dis)
    left_dis, right_dis = left_dis.masked_fill(nan, 0), right_dis.masked_fill(nan, 0)
    return torch.cat((left_dis @ left_idx[:, None], right_dis @ right_idx[:, None]), dim=-1)


@HEADS.register_module()
class TriDetHead(AnchorFreeHead):
    """Trident head: classes per point, and per (point, class) boundaries from three branches.

    ``reg_head`` predicts ``2 (num_bins + 1)`` centre-offset logits per point;
    ``cls_start_convs`` / ``cls_end_convs`` (on detached features) and
    ``cls_start_head`` / ``cls_end_head`` predict per-class boundary logits; the
    distances are :func:`decode_trident` of windows of ``num_bins + 1`` steps.

    Args:
        kernel_size: kernel of the class/offset towers and of ``cls_head`` / ``reg_head``.
        boundary_kernel_size: kernel of the boundary towers and heads.
        iou_weight_power: the classification loss of each positive (point,
            class) is multiplied by ``(1 - GIoU loss)^iou_weight_power``.
        num_bins: ``n``, the boundary range in strides.
        iou_loss: the loss behind that weight (built, ``loss.iou_rate``, e.g. ``GIOULoss``).
        **kwargs: :class:`AnchorFreeHead` keys (``num_classes``, ``in_channels``, ...).
    """

    def __init__(
        self,
        *,
        kernel_size: int = 3,
        boundary_kernel_size: int = 3,
        iou_weight_power: float = 0.2,
        num_bins: int = 16,
        iou_loss: nn.Module,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self.boundary_kernel_size = boundary_kernel_size
        self.num_bins = num_bins
        self.iou_weight_power = iou_weight_power
        if kernel_size != 3:  # the base builds kernel-3 towers and classifier
            self.cls_convs, self.reg_convs = self._tower(kernel_size), self._tower(kernel_size)
            bias = self.cls_head.bias.detach().clone()
            self.cls_head = self._conv(self.num_classes, kernel_size)
            self.cls_head.bias.data.copy_(bias)
        self.reg_head = self._conv(2 * (num_bins + 1), kernel_size)
        self.cls_start_head = self._conv(self.num_classes, boundary_kernel_size)
        self.cls_end_head = self._conv(self.num_classes, boundary_kernel_size)
        self.cls_start_convs = self._tower(boundary_kernel_size)
        self.cls_end_convs = self._tower(boundary_kernel_size)
        self.iou_loss = iou_loss

    @classmethod
    def from_config(
        cls, *, prior_generator: Mapping[str, Any], loss: Mapping[str, Mapping[str, Any]], **kwargs: Any
    ) -> Dict[str, nn.Module]:
        """Build the point generator and the losses ``loss=dict(cls_loss=..., reg_loss=..., iou_rate=...)``.

        Raises:
            ConfigError: ``loss`` has other keys than these three.
        """
        if set(loss) != {"cls_loss", "reg_loss", "iou_rate"}:
            raise ConfigError(
                f"{cls.__name__} loss must have exactly the keys cls_loss, reg_loss and iou_rate, got {sorted(loss)}"
            )
        pair = {key: loss[key] for key in ("cls_loss", "reg_loss")}
        built = super().from_config(prior_generator=prior_generator, loss=pair)
        return dict(built, iou_loss=build(loss["iou_rate"], LOSSES))

    def _conv(self, out_channels: int, kernel_size: int) -> nn.Conv1d:
        return nn.Conv1d(self.feat_channels, out_channels, kernel_size=kernel_size, padding=kernel_size // 2)

    def boundary_levels(
        self, feat_list: Sequence[torch.Tensor], mask_list: Sequence[torch.Tensor]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Start and end logits per level, ``[B, C, T_l]`` each, from detached features (no gradient upstream)."""
        starts, ends = [], []
        for feat, mask in zip(feat_list, mask_list):
            start_feat = end_feat = feat.detach()
            for start_conv, end_conv in zip(self.cls_start_convs, self.cls_end_convs):
                start_feat, _ = start_conv(start_feat, mask)
                end_feat, _ = end_conv(end_feat, mask)
            starts.append(self.cls_start_head(start_feat))
            ends.append(self.cls_end_head(end_feat))
        return starts, ends

    def decode_levels(self, reg_pred, starts, ends) -> torch.Tensor:
        """``[B, sum T_l, C, 2]`` distances (strides) of every point for every class."""
        offsets = torch.cat([r.transpose(1, 2) for r in reg_pred], dim=1)  # [B, P, 2 (n + 1)]
        offsets = offsets.view(offsets.shape[:2] + (2, -1))
        left = torch.cat([boundary_windows(s, self.num_bins, start=True) for s in starts], dim=1)
        right = torch.cat([boundary_windows(e, self.num_bins, start=False) for e in ends], dim=1)
        return decode_trident(offsets, left, right)

    def forward_train(self, feat_list, mask_list, gt_segments, gt_labels) -> Dict[str, torch.Tensor]:
        """Losses of one batch (shapes as :meth:`AnchorFreeHead.forward_train`)."""
        cls_pred, reg_pred = self.forward_levels(feat_list, mask_list)
        starts, ends = self.boundary_levels(feat_list, mask_list)
        points = self.prior_generator(feat_list)
        return self.losses(cls_pred, reg_pred, mask_list, points, gt_segments, gt_labels, starts, ends)

    def forward_test(self, feat_list, mask_list) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Class-specific proposals and scores at every point (padded points score 0, as upstream).

        Returns:
            ``(proposals, scores)``: per sample ``[P, C, 2]`` (input steps) and ``[P, C]``.
        """
        cls_pred, reg_pred = self.forward_levels(feat_list, mask_list)
        starts, ends = self.boundary_levels(feat_list, mask_list)
        points = torch.cat(self.prior_generator(feat_list), dim=0)
        distances = self.decode_levels(reg_pred, starts, ends).transpose(1, 2)  # [B, C, P, 2]
        proposals = distance_to_segment(points, distances).transpose(1, 2)  # [B, P, C, 2]
        valid = torch.cat(list(mask_list), dim=1)[..., None]
        scores = torch.cat(cls_pred, dim=-1).transpose(1, 2).sigmoid() * valid
        return list(proposals), list(scores)

    def losses(self, cls_pred, reg_pred, mask_list, points, gt_segments, gt_labels, starts, ends):
        """Focal loss weighted by the positives' IoU, DIoU loss on each positive (point, class) pair.

        As upstream: the regression loss has one term per positive (point,
        class) pair, decoded with that class's boundaries, divided by the
        (running) number of positive points; the IoU weight is not detached;
        the classification loss is divided by the running normaliser (buffer
        ``loss_normalizer``) also in eval mode, where the regression loss takes
        the batch's count.

        Args:
            cls_pred: per level ``[B, C, T_l]``; reg_pred: per level ``[B, 2 (n + 1), T_l]``.
            mask_list: per level ``[B, T_l]``; points: per level ``[T_l, 4]``.
            gt_segments, gt_labels: per sample ground truth.
            starts, ends: per level ``[B, C, T_l]`` boundary logits.

        Returns:
            ``{"cls_loss": scalar, "reg_loss": scalar}``.
        """
        points = torch.cat(points, dim=0)
        gt_cls, gt_reg = self.prepare_targets(points, gt_segments, gt_labels)  # [B, P, C], [B, P, 2]
        valid = torch.cat(list(mask_list), dim=1)
        pos_mask, num_pos, normalizer = self.positives(gt_cls, valid)

        logits = torch.cat(cls_pred, dim=-1).transpose(1, 2)[valid]
        target = self.smoothed(gt_cls[valid])
        cls_loss = self.cls_loss(logits, target, reduction="none")

        pos_cls = gt_cls[pos_mask]  # [N_pos, C]
        pair_point = torch.nonzero(pos_cls, as_tuple=True)[0]
        pred_dist = self.decode_levels(reg_pred, starts, ends)[pos_mask][pos_cls.bool()]  # [N_pairs, 2]
        pair_points = points[None].expand(pos_mask.shape[0], -1, -1)[pos_mask][pair_point]
        pred_segments = distance_to_segment(pair_points, pred_dist)
        target_segments = distance_to_segment(pair_points, gt_reg[pos_mask][pair_point])

        iou_rate = self.iou_loss(pred_segments, target_segments, reduction="none")
        iou_weight = (1 - iou_rate) ** self.iou_weight_power  # one per pair, in the order of target > floor
        floor = self.label_smoothing / (self.num_classes + 1)  # the smoothed target of a negative
        iou_weight = torch.ones_like(cls_loss).masked_scatter(target > floor, iou_weight)
        cls_loss = (cls_loss * iou_weight).sum() / self.loss_normalizer

        if num_pos == 0:
            reg_loss = pred_segments.sum() * 0
        else:
            reg_loss = self.reg_loss(pred_segments, target_segments, reduction="sum") / normalizer
        return self.weighted(cls_loss, reg_loss)
