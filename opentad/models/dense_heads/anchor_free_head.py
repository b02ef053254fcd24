"""Anchor-free dense head: per-level conv towers, per-point classes and boundary distances."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.bricks.conv import ConvModule
from opentad.models.bricks.misc import Scale
from opentad.models.dense_heads.point_assigner import assign_points
from opentad.models.dense_heads.prior_generator.point_generator import PointGenerator
from opentad.models.utils.bbox_tools import distance_to_segment
from opentad.registry import HEADS, LOSSES, PRIOR_GENERATORS, ConfigError, build

__all__ = ["AnchorFreeHead", "PointHead"]


class PointHead(nn.Module):
    """Towers and predictions of the anchor-free heads, without a target rule (not registered).

    Each level goes through ``num_convs`` masked conv+LN+ReLU layers in two
    towers (``cls_convs``, ``reg_convs``, shared across levels), then
    ``cls_head`` (logits) and ``reg_head`` (distances in strides, through a
    per-level ``Scale`` and a ReLU). Subclasses define ``losses``
    (:class:`AnchorFreeHead`: the points' centre-sampling rule).

    Args:
        num_classes: ``C``.
        in_channels: channels of the pyramid.
        feat_channels: channels of the towers.
        num_convs: layers per tower.
        prior_generator: the points (a built :class:`PointGenerator`).
        cls_loss: loss on logits vs. soft targets (built, e.g. ``FocalLoss``).
        reg_loss: loss on predicted vs. target segments (built, e.g. ``DIOULoss``).
        loss_normalizer: initial value of the running number of positives
            (buffer ``loss_normalizer``) that divides both losses in training.
        loss_normalizer_momentum: its EMA momentum.
        label_smoothing: ``eps``: targets become ``t (1 - eps) + eps / (C + 1)``.
        cls_prior_prob: initial foreground probability (sets ``cls_head`` bias); 0 to skip.
        loss_weight: weight of the regression loss; <= 0 balances it to the
            classification loss (``cls / max(reg, 0.01)``, no gradient).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        feat_channels: int,
        num_convs: int = 3,
        prior_generator: PointGenerator,
        cls_loss: nn.Module,
        reg_loss: nn.Module,
        loss_normalizer: float = 100.0,
        loss_normalizer_momentum: float = 0.9,
        label_smoothing: float = 0.0,
        cls_prior_prob: float = 0.01,
        loss_weight: float = 1.0,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.num_convs = num_convs
        self.cls_prior_prob = cls_prior_prob
        self.label_smoothing = label_smoothing
        self.loss_weight = loss_weight
        self.loss_normalizer_momentum = loss_normalizer_momentum
        self.register_buffer("loss_normalizer", torch.tensor(float(loss_normalizer)))
        self.prior_generator = prior_generator
        self.cls_convs = self._tower()
        self.reg_convs = self._tower()
        self.cls_head = nn.Conv1d(feat_channels, num_classes, kernel_size=3, padding=1)
        self.reg_head = nn.Conv1d(feat_channels, 2, kernel_size=3, padding=1)
        self.scale = nn.ModuleList(Scale() for _ in self.prior_generator.strides)
        if cls_prior_prob > 0:
            nn.init.constant_(self.cls_head.bias, -math.log((1 - cls_prior_prob) / cls_prior_prob))
        self.cls_loss = cls_loss
        self.reg_loss = reg_loss

    @classmethod
    def from_config(
        cls, *, prior_generator: Mapping[str, Any], loss: Mapping[str, Mapping[str, Any]], **kwargs: Any
    ) -> Dict[str, nn.Module]:
        """Build the point generator and the two losses (``loss=dict(cls_loss=..., reg_loss=...)``).

        The other config keys go to the constructor unchanged (:func:`opentad.registry.build`).

        Raises:
            ConfigError: ``loss`` lacks or adds keys besides ``cls_loss`` / ``reg_loss``.
        """
        if set(loss) != {"cls_loss", "reg_loss"}:
            raise ConfigError(
                f"{cls.__name__} loss must have exactly the keys cls_loss and reg_loss, got {sorted(loss)}"
            )
        return dict(
            prior_generator=build(prior_generator, PRIOR_GENERATORS),
            cls_loss=build(loss["cls_loss"], LOSSES),
            reg_loss=build(loss["reg_loss"], LOSSES),
        )

    def _tower(self, kernel_size: int = 3) -> nn.ModuleList:
        """``num_convs`` masked conv+LN+ReLU layers ``in_channels -> feat_channels`` (odd ``kernel_size``)."""
        return nn.ModuleList(
            ConvModule(
                self.in_channels if i == 0 else self.feat_channels,
                self.feat_channels,
                kernel_size=kernel_size,
                padding=kernel_size // 2,
                norm_cfg=dict(type="LN"),
                act_cfg=dict(type="relu"),
            )
            for i in range(self.num_convs)
        )

    def forward_levels(
        self, feat_list: Sequence[torch.Tensor], mask_list: Sequence[torch.Tensor]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Raw predictions per level: logits ``[B, C, T_l]`` and distances ``[B, 2, T_l]`` (>= 0)."""
        cls_pred, reg_pred = [], []
        for level, (feat, mask) in enumerate(zip(feat_list, mask_list)):
            cls_feat = reg_feat = feat
            for cls_conv, reg_conv in zip(self.cls_convs, self.reg_convs):
                cls_feat, _ = cls_conv(cls_feat, mask)
                reg_feat, _ = reg_conv(reg_feat, mask)
            cls_pred.append(self.cls_head(cls_feat))
            reg_pred.append(F.relu(self.scale[level](self.reg_head(reg_feat))))
        return cls_pred, reg_pred

    def forward_train(
        self,
        feat_list: Sequence[torch.Tensor],
        mask_list: Sequence[torch.Tensor],
        gt_segments: Sequence[torch.Tensor],
        gt_labels: Sequence[torch.Tensor],
    ) -> Dict[str, torch.Tensor]:
        """Losses of one batch.

        Args:
            feat_list: pyramid ``[B, C_in, T_l]``.
            mask_list: masks ``[B, T_l]``.
            gt_segments: per sample ``[N_i, 2]`` in input steps.
            gt_labels: per sample ``[N_i]`` class indices.

        Returns:
            ``{"cls_loss": scalar, "reg_loss": scalar}``.
        """
        cls_pred, reg_pred = self.forward_levels(feat_list, mask_list)
        points = self.prior_generator(feat_list)
        return self.losses(cls_pred, reg_pred, mask_list, points, gt_segments, gt_labels)

    def forward_test(
        self, feat_list: Sequence[torch.Tensor], mask_list: Sequence[torch.Tensor]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Proposals and sigmoid scores at the valid points of each sample.

        Returns:
            ``(proposals, scores)``: per sample ``[P_i, 2]`` (input steps) and ``[P_i, C]``.
        """
        cls_pred, reg_pred = self.forward_levels(feat_list, mask_list)
        points = torch.cat(self.prior_generator(feat_list), dim=0)
        proposals = distance_to_segment(points, torch.cat(reg_pred, dim=-1).transpose(1, 2))
        scores = torch.cat(cls_pred, dim=-1).transpose(1, 2).sigmoid()
        valid = torch.cat(list(mask_list), dim=1)
        return [p[m] for p, m in zip(proposals, valid)], [s[m] for s, m in zip(scores, valid)]

    def _normalizer(self, num_pos: int) -> float:
        """Running mean of the number of positives in training, the count itself otherwise."""
        if not self.training:
            return float(max(num_pos, 1))
        momentum = self.loss_normalizer_momentum
        self.loss_normalizer.mul_(momentum).add_((1 - momentum) * max(num_pos, 1))
        return float(self.loss_normalizer)

    def smoothed(self, gt_cls: torch.Tensor) -> torch.Tensor:
        """Label smoothing of targets ``[..., C]``: ``t (1 - eps) + eps / (C + 1)``."""
        return gt_cls * (1 - self.label_smoothing) + self.label_smoothing / (self.num_classes + 1)

    def weighted(self, cls_loss: torch.Tensor, reg_loss: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``{"cls_loss", "reg_loss" * loss_weight}`` (``loss_weight <= 0``: ``cls / max(reg, 0.01)``, no gradient)."""
        weight = self.loss_weight if self.loss_weight > 0 else cls_loss.detach() / max(reg_loss.item(), 0.01)
        return {"cls_loss": cls_loss, "reg_loss": reg_loss * weight}

    def positives(self, gt_cls: torch.Tensor, valid: torch.Tensor) -> Tuple[torch.Tensor, int, float]:
        """Positive points ``[B, P]`` (some class target among the ``valid [B, P]``), their number and
        the loss normaliser (:meth:`_normalizer`, updated in training) of targets ``gt_cls [B, P, C]``."""
        pos_mask = (gt_cls.sum(-1) > 0) & valid
        num_pos = int(pos_mask.sum().item())
        return pos_mask, num_pos, self._normalizer(num_pos)


@HEADS.register_module()
class AnchorFreeHead(PointHead):
    """:class:`PointHead` trained on the points inside (the centre of) each action (:func:`assign_points`).

    Args:
        center_sample: ``"radius"`` or None (see :func:`assign_points`).
        center_sample_radius: radius in strides.
        filter_similar_gt: see :func:`assign_points`.
        **kwargs: the keys of :class:`PointHead` (``num_classes``, ``in_channels``, losses, ...).

    Raises:
        ValueError: unknown ``center_sample``.
    """

    def __init__(
        self,
        *,
        center_sample: Optional[str] = "radius",
        center_sample_radius: float = 1.5,
        filter_similar_gt: bool = True,
        **kwargs: Any,
    ):
        if center_sample not in ("radius", None):
            raise ValueError(f"center_sample must be 'radius' or None, got {center_sample!r}")
        super().__init__(**kwargs)
        self.center_sample = center_sample
        self.center_sample_radius = center_sample_radius
        self.filter_similar_gt = filter_similar_gt

    def losses(self, cls_pred, reg_pred, mask_list, points, gt_segments, gt_labels) -> Dict[str, torch.Tensor]:
        """Focal-type classification loss on valid points, IoU-type regression loss on positives.

        Args:
            cls_pred: per level ``[B, C, T_l]`` logits.
            reg_pred: per level ``[B, 2, T_l]`` distances.
            mask_list: per level ``[B, T_l]``.
            points: per level ``[T_l, 4]``.
            gt_segments, gt_labels: per sample ground truth.
        """
        points = torch.cat(points, dim=0)
        gt_cls, gt_reg = self.prepare_targets(points, gt_segments, gt_labels)  # [B, P, C], [B, P, 2]
        valid = torch.cat(list(mask_list), dim=1)
        pos_mask, num_pos, normalizer = self.positives(gt_cls, valid)

        logits = torch.cat(cls_pred, dim=-1).transpose(1, 2)[valid]
        cls_loss = self.cls_loss(logits, self.smoothed(gt_cls[valid]), reduction="sum") / normalizer

        pred_segments = distance_to_segment(points, torch.cat(reg_pred, dim=-1).transpose(1, 2))[pos_mask]
        if num_pos == 0:
            reg_loss = pred_segments.sum() * 0
        else:
            target_segments = distance_to_segment(points, gt_reg)[pos_mask]
            reg_loss = self.reg_loss(pred_segments, target_segments, reduction="sum") / normalizer
        return self.weighted(cls_loss, reg_loss)

    @torch.no_grad()
    def prepare_targets(
        self, points: torch.Tensor, gt_segments: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Targets of all points of every sample: ``([B, P, C], [B, P, 2])`` (see :func:`assign_points`)."""
        targets = [
            assign_points(
                points,
                segments.to(points),
                labels.to(points.device),
                num_classes=self.num_classes,
                center_sample=self.center_sample,
                center_sample_radius=self.center_sample_radius,
                filter_similar_gt=self.filter_similar_gt,
            )
            for segments, labels in zip(gt_segments, gt_labels)
        ]
        return torch.stack([t[0] for t in targets]), torch.stack([t[1] for t in targets])
