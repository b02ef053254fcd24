"""IoU-type regression losses on 1D segments ``[start, end]``."""
from __future__ import annotations

import torch
import torch.nn as nn

from opentad.models.losses.reduction import reduce_loss
from opentad.models.utils.iou_tools import segment_diou_aligned, segment_giou_aligned
from opentad.registry import LOSSES

__all__ = ["DIOULoss", "GIOULoss"]


def _check_pairs(input_bboxes: torch.Tensor, target_bboxes: torch.Tensor, name: str) -> None:
    if input_bboxes.shape != target_bboxes.shape or input_bboxes.shape[-1:] != (2,):
        raise ValueError(
            f"{name} expects predictions and targets of one shape [N, 2], got {tuple(input_bboxes.shape)} "
            f"and {tuple(target_bboxes.shape)}"
        )


@LOSSES.register_module()
class DIOULoss(nn.Module):
    """``1 - DIoU`` of each prediction with its target (Zheng et al. 2020)."""

    def forward(
        self, input_bboxes: torch.Tensor, target_bboxes: torch.Tensor, reduction: str = "none", eps: float = 1e-7
    ) -> torch.Tensor:
        """Loss of aligned pairs.

        Args:
            input_bboxes: ``[N, 2]`` predicted segments.
            target_bboxes: ``[N, 2]`` target segments.
            reduction: ``"none"`` (``[N]``), ``"mean"`` or ``"sum"``.
            eps: lower bound of the union and of the squared enclosing length.

        Raises:
            ValueError: shapes differ or are not ``[N, 2]``; unknown reduction.
        """
        _check_pairs(input_bboxes, target_bboxes, "DIOULoss")
        return reduce_loss(1 - segment_diou_aligned(input_bboxes, target_bboxes, eps=eps), reduction)


@LOSSES.register_module(name=["GIOULoss", "GIoULoss"])
class GIOULoss(nn.Module):
    """``1 - GIoU`` of each prediction with its target (Rezatofighi et al. 2019).

    Registered also as ``GIoULoss``, the name of upstream's VSGN configs (a placeholder there).
    """

    def forward(
        self, input_bboxes: torch.Tensor, target_bboxes: torch.Tensor, reduction: str = "none"
    ) -> torch.Tensor:
        """Loss of aligned ``[N, 2]`` pairs, reduced by ``"none"``, ``"mean"`` or ``"sum"``.

        Raises:
            ValueError: shapes differ or are not ``[N, 2]``; unknown reduction.
        """
        _check_pairs(input_bboxes, target_bboxes, "GIOULoss")
        return reduce_loss(1 - segment_giou_aligned(input_bboxes, target_bboxes), reduction)
