"""BMN's regression loss on proposal IoU: squared error on a randomly balanced subset."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.registry import LOSSES

__all__ = ["BalancedL2Loss"]


def _keep_some(band: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Each element of ``band`` (0/1) kept with probability ``ratio``: ``rand * band > 1 - ratio``.

    Draws ``torch.rand`` of ``band``'s shape on the CPU generator, as upstream (so
    a seed gives upstream's subset). A ``ratio`` of ``inf`` (empty band) keeps
    every element, in or out of the band (upstream's arithmetic, kept).
    """
    draw = torch.rand(band.shape).to(band.device) * band
    return (draw > (1 - ratio)).to(band.dtype)


@LOSSES.register_module()
class BalancedL2Loss(nn.Module):
    """Mean squared error over all high-IoU elements and as many sampled middle and low ones.

    Elements split by their target: high (``> high_thresh``), middle
    (``(low_thresh, high_thresh]``) and low (``<= low_thresh``). Every high one
    counts; a middle one is kept with probability ``n_high / n_middle`` and a low
    one with ``n_high / n_low``. The loss is the squared error summed over the
    kept elements, divided by their number, times ``weight``. Without high
    elements it is the plain mean squared error (unweighted, as upstream).

    Args:
        high_thresh: lower bound (exclusive) of the high band.
        low_thresh: upper bound (inclusive) of the low band.
        weight: factor of the balanced loss.
    """

    def __init__(self, *, high_thresh: float = 0.7, low_thresh: float = 0.3, weight: float = 1.0):
        super().__init__()
        self.high_thresh = high_thresh
        self.low_thresh = low_thresh
        self.weight = weight

    def forward(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """Scalar loss of ``pred`` against ``gt`` (same shape, e.g. ``[B, N]``)."""
        high = (gt > self.high_thresh).float()
        middle = ((gt <= self.high_thresh) & (gt > self.low_thresh)).float()
        low = (gt <= self.low_thresh).float()
        num_high = high.sum()
        if num_high == 0:
            return F.mse_loss(pred, gt, reduction="mean")
        keep = high + _keep_some(middle, num_high / middle.sum()) + _keep_some(low, num_high / low.sum())
        loss = F.mse_loss(pred, gt, reduction="none")
        return (loss * keep).sum() / keep.sum() * self.weight

    def extra_repr(self) -> str:
        return f"high_thresh={self.high_thresh}, low_thresh={self.low_thresh}, weight={self.weight}"
