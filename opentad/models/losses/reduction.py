"""The ``reduction`` argument shared by the losses."""
from __future__ import annotations

import torch

__all__ = ["REDUCTIONS", "reduce_loss"]

REDUCTIONS = ("none", "mean", "sum")


def reduce_loss(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce element-wise losses.

    Args:
        loss: element-wise losses of any shape.
        reduction: ``"none"`` (as is), ``"mean"`` (0 for an empty tensor, still
            attached to the graph) or ``"sum"``.

    Raises:
        ValueError: unknown reduction.
    """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else loss.sum() * 0.0
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
