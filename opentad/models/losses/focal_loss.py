"""Sigmoid focal loss (RetinaNet, Lin et al. 2017)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.losses.reduction import reduce_loss
from opentad.registry import LOSSES

__all__ = ["FocalLoss", "sigmoid_focal_loss"]


def sigmoid_focal_loss(
    inputs: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Element-wise focal loss on logits, computed in float32.

    ``loss = a_t * (1 - p_t)^gamma * BCE(sigmoid(x), t)`` with
    ``p_t = p t + (1 - p)(1 - t)`` and ``a_t = alpha t + (1 - alpha)(1 - t)``
    (no ``a_t`` when ``alpha < 0``). Targets may be soft (label smoothing).

    Args:
        inputs: logits of any shape.
        targets: same shape, in ``[0, 1]``.
        alpha: weight of the positive term, or < 0 for none.
        gamma: focusing exponent.

    Returns:
        Losses of the inputs' shape.
    """
    inputs, targets = inputs.float(), targets.float()
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


@LOSSES.register_module()
class FocalLoss(nn.Module):
    """Sigmoid focal loss as a module.

    Args:
        alpha: weight of positives (0.25), < 0 to disable.
        gamma: focusing exponent (2.0).
    """

    def __init__(self, *, alpha: float = 0.25, gamma: float = 2.0):
        super().__init__()
        self.alpha = alpha
        self.gamma = gamma

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, reduction: str = "none") -> torch.Tensor:
        """Loss of logits ``inputs`` against ``targets`` (same shape), reduced by ``reduction``."""
        return reduce_loss(sigmoid_focal_loss(inputs, targets, self.alpha, self.gamma), reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}"
