"""BMN's class-balanced binary cross-entropy (boundary and proposal-confidence targets)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.registry import LOSSES

__all__ = ["BalancedBCELoss"]


@LOSSES.register_module()
class BalancedBCELoss(nn.Module):
    """Binary cross-entropy on probabilities with positives and negatives weighted to equal shares.

    Targets above ``pos_thresh`` are positives (label 1), the rest negatives
    (label 0). With ``n+`` positives and ``n-`` negatives a positive weighs
    ``(n+ + n-) / (2 n+)`` and a negative ``(n+ + n-) / (2 n-)``; the loss is the
    mean of the weighted element losses. Without positives or without negatives
    it is the plain mean (upstream's arithmetic).

    Args:
        pos_thresh: a target above it is positive.
    """

    def __init__(self, *, pos_thresh: float = 0.5):
        super().__init__()
        self.pos_thresh = pos_thresh

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """Scalar loss.

        Args:
            pred: probabilities (after sigmoid), any shape, e.g. ``[B, T]``.
            gt: soft targets of the same shape.
        """
        positive = (gt > self.pos_thresh).to(pred.dtype)
        negative = 1.0 - positive
        loss = F.binary_cross_entropy(pred, positive, reduction="none")
        num_pos, num_neg = positive.sum(), negative.sum()
        if num_pos == 0 or num_neg == 0:
            return loss.mean()
        total = num_pos + num_neg
        weight = 0.5 * total / num_pos * positive + 0.5 * total / num_neg * negative
        return (weight * loss).mean()

    def extra_repr(self) -> str:
        return f"pos_thresh={self.pos_thresh}"
