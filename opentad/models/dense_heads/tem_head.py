"""BMN's temporal evaluation module (TEM): per-step start, end (and action) probabilities.

The first stage of the proposal-map detectors (BMN, GTAD, ETAD, VSGN). Variants
change one step: :meth:`TemporalEvaluationHead.make_branch` (the layers),
:meth:`TemporalEvaluationHead.predict` (the forward),
:meth:`TemporalEvaluationHead.prepare_targets` or
:meth:`TemporalEvaluationHead.losses`.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from opentad.models.bricks.conv import ConvModule
from opentad.models.losses.balanced_bce_loss import BalancedBCELoss
from opentad.models.utils.tem_targets import TEM_TARGETS, tem_targets
from opentad.registry import HEADS

__all__ = ["TemporalEvaluationHead"]


@HEADS.register_module()
class TemporalEvaluationHead(nn.Module):
    """Conv branches giving one logit map per target kind, trained with :class:`BalancedBCELoss`.

    Each branch is ``ConvModule(C, C, 3, act relu) -> ConvModule(C, k, 1)``:
    one branch of ``num_classes`` outputs when ``shared`` (keys ``tem.0.*``,
    ``tem.1.*``), else ``num_classes`` branches of one output (keys
    ``tem.{i}.0.*``, ``tem.{i}.1.*``), as upstream. The loss is the sum over
    the kinds of ``BalancedBCELoss(sigmoid(logit), target)``. The input mask is
    not used (upstream).

    Args:
        in_channels: input channels ``C``.
        num_classes: number of predicted maps (= ``len(loss["gt_type"])``).
        loss: ``dict(pos_thresh=0.5, gt_type=["startness", "endness"])``; ``gt_type``
            names the kinds (of ``startness``, ``endness``, ``actionness``) in output order.
        conv_cfg: extra ``nn.Conv1d`` arguments of the first conv (``groups``).
        shared: one branch for all kinds.

    Raises:
        ValueError: ``loss`` lacks a key, names an unknown kind, or their number is not ``num_classes``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        loss: Mapping[str, Any],
        conv_cfg: Optional[Mapping[str, Any]] = None,
        shared: bool = False,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.conv_cfg = conv_cfg
        self.shared = shared
        self.gt_type, pos_thresh = self.parse_loss(loss)
        self.tem_loss = BalancedBCELoss(pos_thresh=pos_thresh)
        self.tem = self.make_tem()

    def parse_loss(self, loss: Mapping[str, Any]) -> Tuple[List[str], float]:
        """Hook: ``(gt_type, pos_thresh)`` of the ``loss`` option, checked against ``num_classes``."""
        missing = [key for key in ("pos_thresh", "gt_type") if key not in loss]
        if missing:
            raise ValueError(f"{type(self).__name__}.loss needs keys {missing}, got {dict(loss)}")
        gt_type = list(loss["gt_type"])
        unknown = [kind for kind in gt_type if kind not in TEM_TARGETS]
        if unknown or len(gt_type) != self.num_classes:
            raise ValueError(
                f"{type(self).__name__}: loss.gt_type {gt_type} must name {self.num_classes} (num_classes) "
                f"kinds of {list(TEM_TARGETS)}"
            )
        return gt_type, float(loss["pos_thresh"])

    def make_branch(self, out_channels: int) -> nn.Module:
        """Hook: one branch ``[B, C, T] -> [B, out_channels, T]``."""
        return nn.Sequential(
            ConvModule(
                self.in_channels,
                self.in_channels,
                kernel_size=3,
                padding=1,
                conv_cfg=self.conv_cfg,
                act_cfg=dict(type="relu"),
            ),
            ConvModule(self.in_channels, out_channels, kernel_size=1),
        )

    def make_tem(self) -> nn.Module:
        """The ``tem`` module: one shared branch, or one branch per kind."""
        if self.shared:
            return self.make_branch(self.num_classes)
        return nn.ModuleList(self.make_branch(1) for _ in range(self.num_classes))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Hook: logits ``[B, num_classes, T]`` of features ``x [B, C, T]``."""
        if self.shared:
            return self.tem(x)
        return torch.cat([branch(x) for branch in self.tem], dim=1)

    def forward_train(
        self, x: torch.Tensor, masks: torch.Tensor, gt_segments: Sequence[torch.Tensor], **kwargs: Any
    ) -> Tuple[Dict[str, torch.Tensor], None]:
        """``({"loss_tem": scalar}, None)``: the first stage proposes nothing (the map is dense)."""
        return {"loss_tem": self.losses(self.predict(x), gt_segments)}, None

    def forward_test(self, x: torch.Tensor, masks: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Logits ``[B, num_classes, T]``."""
        return self.predict(x)

    def prepare_targets(self, gt_segments: Sequence[torch.Tensor], tscale: int) -> List[torch.Tensor]:
        """Hook: one ``[B, T]`` target per entry of ``gt_type``, in that order (:func:`tem_targets`: int64 0/1)."""
        targets = tem_targets(gt_segments, tscale)
        return [targets[kind] for kind in self.gt_type]

    def losses(self, pred: torch.Tensor, gt_segments: Sequence[torch.Tensor]) -> torch.Tensor:
        """Hook: the summed balanced BCE of ``sigmoid(pred [B, K, T])`` against the targets."""
        targets = self.prepare_targets(gt_segments, tscale=pred.shape[-1])
        prob = pred.sigmoid()
        return sum(self.tem_loss(prob[:, i], gt) for i, gt in enumerate(targets))
