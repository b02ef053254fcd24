"""Binary cross-entropy on all positives and a random subset of as many negatives (ETAD's ``bl_sample_loss``)."""
from __future__ import annotations

import torch
import torch.nn as nn

from opentad.models.losses.balanced_l2_loss import _keep_some

__all__ = ["SampledBCELoss"]

_EPS = 1e-6


class SampledBCELoss(nn.Module):
    """``-sum(p log(x + eps) + s log(1 - x + eps)) / (n+ + sum s)`` (upstream ETAD's arithmetic).

    Targets above ``pos_thresh`` are the positives ``p`` (``n+`` of them); each
    negative enters ``s`` with probability ``n+ / n-`` (``torch.rand`` of the
    targets' shape on the CPU generator, as upstream, so a seed gives upstream's
    subset). Without positives the loss is ``-mean(log(1 - x + eps))`` over
    every element and nothing is drawn. Not registered: upstream names no such
    loss in configs (ETAD's head calls it).

    Args:
        pos_thresh: a target above it is positive.
    """

    def __init__(self, *, pos_thresh: float = 0.9):
        super().__init__()
        self.pos_thresh = pos_thresh

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """Scalar loss of probabilities ``pred`` against targets ``gt`` (same shape, e.g. ``[B, K]``)."""
        positive = (gt > self.pos_thresh).float()
        negative = (gt <= self.pos_thresh).float()
        num_pos = positive.sum()
        if num_pos == 0:
            return -torch.mean(torch.log(1.0 - pred + _EPS))
        sampled = _keep_some(negative, num_pos / negative.sum())
        loss = positive * torch.log(pred + _EPS) + sampled * torch.log(1.0 - pred + _EPS)
        return -loss.sum() / (num_pos + sampled.sum())

    def extra_repr(self) -> str:
        return f"pos_thresh={self.pos_thresh}"
