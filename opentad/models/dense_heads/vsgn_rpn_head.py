"""VSGN's first stage (Zhao et al., ICCV 2021): anchor classification and regression on every level, plus a TEM."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.dense_heads.vsgn_targets import (
    ForegroundEMA,
    decode_offsets,
    giou_loss,
    prepare_targets,
    vsgn_anchors,
)
from opentad.models.losses.balanced_ce_loss import BalancedCELoss
from opentad.registry import HEADS, LOSSES, bind, build

__all__ = ["VSGNRPNHead", "AnchorOptions"]


@dataclass
class AnchorOptions:
    """``anchor_generator`` of :class:`VSGNRPNHead`: level strides, window length, scales (:func:`vsgn_anchors`)."""

    pyramid_levels: Sequence[int]
    tscale: int
    anchor_scale: Sequence[float]


def _tower(channels: int, num_layers: int) -> nn.Sequential:
    """``num_layers`` x (conv3 without bias, GroupNorm(32), ReLU); keys ``{i}.0.weight``, ``{i}.1.*``."""
    return nn.Sequential(*(
        nn.Sequential(nn.Conv1d(channels, channels, 3, padding=1, bias=False), nn.GroupNorm(32, channels), nn.ReLU())
        for _ in range(num_layers)
    ))


@HEADS.register_module()
class VSGNRPNHead(nn.Module):
    """Anchor head shared by the levels, and a temporal evaluation head on the finest level.

    Per level, ``cls_tower -> cls_head`` gives ``A * num_classes`` logits and
    ``reg_tower -> reg_head`` ``A * 2`` offsets per position (``A =
    len(anchor_scale)``); offsets decode into segments around the anchors of
    ``anchor_generator`` (:func:`vsgn_anchors`). The finest level, resized to
    ``tscale`` steps (linear, corners aligned), feeds ``tem_head`` (start, end,
    actionness). Losses (upstream's names): ``loss_tem``; ``loss_stage1_reg``,
    the summed GIoU of anchors matched at ``iou_thr`` over an EMA of their
    count; ``loss_stage1_cls`` on labels matched from the *decoded* segments:
    :class:`BalancedCELoss` of the logits (class 0 the background), or with any
    other loss ``loss(logits, labels, reduction="sum")`` over an EMA of the
    positives (one class, sigmoid).

    Args:
        in_channels: channels of every level (a multiple of 32, GroupNorm's groups).
        num_layers: convs of each tower.
        num_classes: 1 (class-agnostic, sigmoid) or the classes plus background (softmax).
        iou_thr: anchor matching threshold.
        anchor_generator: ``dict(pyramid_levels=[...], tscale=T, anchor_scale=[...])``.
        tem_head: config of the temporal evaluation head (``HEADS``).
        loss_cls: config of the classification loss (``LOSSES``).
        loss_loc: upstream's placeholder, not used (the regression loss is :func:`giou_loss`).
        tem: the built ``tem_head`` (made by :meth:`from_config`).
        cls_loss: the built ``loss_cls`` (made by :meth:`from_config`).

    Raises:
        ConfigError: ``anchor_generator`` lacks a key, has an unknown one or a value of the wrong type.
    """

    def __init__(
        self,
        *,
        in_channels: int = 256,
        num_layers: int = 4,
        num_classes: int = 1,
        iou_thr: float = 0.6,
        anchor_generator: Mapping[str, Any],
        loss_loc: Optional[Mapping[str, Any]] = None,
        tem: nn.Module,
        cls_loss: nn.Module,
    ):
        super().__init__()
        anchor_opts = bind(AnchorOptions, anchor_generator, path="VSGNRPNHead.anchor_generator")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.iou_thr = iou_thr
        self.tscale = anchor_opts.tscale
        self.num_anchors = len(anchor_opts.anchor_scale)
        self.cls_tower = _tower(in_channels, num_layers)
        self.cls_head = nn.Conv1d(in_channels, self.num_anchors * num_classes, 3, padding=1)
        self.reg_tower = _tower(in_channels, num_layers)
        self.reg_head = nn.Conv1d(in_channels, self.num_anchors * 2, 3, padding=1)
        self.tem_head = tem
        self.loss_cls_func = cls_loss
        anchors = torch.cat(vsgn_anchors(anchor_opts.pyramid_levels, self.tscale, anchor_opts.anchor_scale))
        self.register_buffer("anchors", anchors, persistent=False)  # [N, 2], no state-dict key (upstream)
        self.normalizer_cls = ForegroundEMA()
        self.normalizer_reg = ForegroundEMA()

    @classmethod
    def from_config(
        cls, *, tem_head: Mapping[str, Any], loss_cls: Mapping[str, Any], **kwargs: Any
    ) -> Dict[str, nn.Module]:
        """Build ``tem_head`` (``HEADS``) and ``loss_cls`` (``LOSSES``)."""
        return dict(tem=build(tem_head, HEADS), cls_loss=build(loss_cls, LOSSES))

    # ---------------------------------------------------------------- forward
    def predict(self, feat_list: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits [B, N, K], segments [B, N, 2], tem_feat [B, C, tscale])`` of levels ``[B, C, T_l]``.

        Raises:
            ValueError: the levels hold another number of positions than the anchors.
        """
        batch = feat_list[0].shape[0]
        logits = torch.cat([self.cls_head(self.cls_tower(f)) for f in feat_list], dim=2)
        offsets = torch.cat([self.reg_head(self.reg_tower(f)) for f in feat_list], dim=2)
        if logits.shape[2] * self.num_anchors != self.anchors.shape[0]:
            raise ValueError(
                f"VSGNRPNHead: the levels hold {logits.shape[2]} positions but anchor_generator made "
                f"{self.anchors.shape[0] // self.num_anchors} (tscale={self.tscale}); the input must be tscale long"
            )
        logits = logits.permute(0, 2, 1).reshape(batch, -1, self.num_classes)
        offsets = offsets.permute(0, 2, 1).reshape(batch, -1, 2)
        segments = decode_offsets(offsets, self.anchors)
        tem_feat = F.interpolate(feat_list[0], size=self.tscale, mode="linear", align_corners=True)
        return logits, segments, tem_feat

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Probabilities ``[B, N, K]``: sigmoid for one class, else softmax (class 0 the background)."""
        return logits.sigmoid() if self.num_classes == 1 else F.softmax(logits, dim=2)

    def forward_train(
        self,
        feat_list: Sequence[torch.Tensor],
        mask_list: Sequence[torch.Tensor],
        *,
        gt_segments: Sequence[torch.Tensor],
        gt_labels: Sequence[torch.Tensor],
        **kwargs: Any,
    ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        """``({"loss_tem", "loss_stage1_reg", "loss_stage1_cls"}, segments [B, N, 2])`` (segments keep their graph)."""
        logits, segments, tem_feat = self.predict(feat_list)
        losses = dict(self.tem_head.forward_train(tem_feat, mask_list, gt_segments)[0])
        losses["loss_stage1_reg"] = self.loc_loss(segments, gt_segments, gt_labels)
        losses["loss_stage1_cls"] = self.cls_loss(logits, segments, gt_segments, gt_labels)
        return losses, segments

    def forward_test(
        self, feat_list: Sequence[torch.Tensor], mask_list: Sequence[torch.Tensor], **kwargs: Any
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(tem_logits [B, 3, tscale], segments [B, N, 2], scores [B, N, K])`` as upstream."""
        logits, segments, tem_feat = self.predict(feat_list)
        return self.tem_head.forward_test(tem_feat, mask_list), segments, self.scores(logits)

    # ----------------------------------------------------------------- losses
    def loc_loss(self, segments, gt_segments, gt_labels) -> torch.Tensor:
        """Summed GIoU of the anchors matched at ``iou_thr`` over the positives' EMA."""
        anchors = self.anchors.expand(segments.shape[0], -1, -1)
        labels, targets = prepare_targets(anchors, gt_segments, gt_labels, self.iou_thr)
        pos = labels > 0
        normalizer = self.normalizer_reg.update(int(pos.sum()))
        return giou_loss(segments.reshape(-1, 2)[pos], targets[pos]) / normalizer

    def cls_loss(self, logits, segments, gt_segments, gt_labels) -> torch.Tensor:
        """Classification loss of labels matched from the decoded ``segments`` (see the class docstring)."""
        labels, _ = prepare_targets(segments.detach(), gt_segments, gt_labels, self.iou_thr)
        if self.num_classes == 1:
            labels = (labels > 0).to(labels.dtype)
        normalizer = self.normalizer_cls.update(int((labels > 0).sum()))
        logits = logits.reshape(-1, self.num_classes)
        if isinstance(self.loss_cls_func, BalancedCELoss):
            return self.loss_cls_func(logits, labels)
        return self.loss_cls_func(logits.squeeze(-1), labels, reduction="sum") / normalizer
