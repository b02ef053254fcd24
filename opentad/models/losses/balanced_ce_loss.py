"""Class-balanced softmax cross-entropy (VSGN's first-stage classification loss)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.registry import LOSSES

__all__ = ["BalancedCELoss"]


@LOSSES.register_module(name=["BalancedCELoss", "BalancedCEloss"])
class BalancedCELoss(nn.Module):
    """Mean cross-entropy of the positives plus mean cross-entropy of the negatives.

    Label 0 is the background: ``loss = sum_{y>0} CE / #{y>0} + sum_{y=0} CE / #{y=0}``,
    so each side weighs the same whatever the imbalance. Registered also as
    ``BalancedCEloss``, the spelling of upstream's ``_base_/models/vsgn.py``.
    As upstream, a batch without positives (or without negatives) gives NaN.
    """

    def forward(self, cls_pred: torch.Tensor, cls_labels: torch.Tensor) -> torch.Tensor:
        """Scalar loss.

        Args:
            cls_pred: ``[N, K]`` logits (class 0 the background).
            cls_labels: ``[N]`` integer labels in ``[0, K)``.

        Raises:
            ValueError: ``cls_pred`` is not ``[N, K]`` or the labels are not ``[N]``.
        """
        if cls_pred.dim() != 2 or cls_labels.shape != cls_pred.shape[:1]:
            raise ValueError(
                f"BalancedCELoss expects logits [N, K] and labels [N], got {tuple(cls_pred.shape)} and "
                f"{tuple(cls_labels.shape)}"
            )
        loss = F.cross_entropy(cls_pred, cls_labels.long(), reduction="none")
        pos = (cls_labels > 0).float()
        neg = (cls_labels == 0).float()
        return (loss * pos).sum() / pos.sum() + (loss * neg).sum() / neg.sum()
