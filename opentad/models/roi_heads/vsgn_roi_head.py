"""VSGN's second stage (Zhao et al., ICCV 2021): boundary refinement of the first stage's segments."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from opentad.models.dense_heads.vsgn_targets import ForegroundEMA, giou_loss, prepare_targets
from opentad.registry import ROI_HEADS, build

__all__ = ["VSGNRoIHead"]


def _offset_branch(channels: int) -> nn.Sequential:
    """``[M, C, 3] -> [M, 1, 1]``: conv3 (stride 2, no padding), ReLU, conv1; keys ``0.*``, ``2.*``."""
    return nn.Sequential(
        nn.Conv1d(channels, channels, kernel_size=3, stride=2), nn.ReLU(inplace=True), nn.Conv1d(channels, 1, 1)
    )


@ROI_HEADS.register_module()
class VSGNRoIHead(nn.Module):
    """Shifts each segment's start and end by offsets read from the features around them.

    ``roi_extractor`` (a :class:`CornerExtractor`) gives three columns around
    each boundary of the finest level; ``start_conv`` / ``end_conv`` turn them
    into one offset each, added to the segment. The loss ``loss_stage2_loc``
    is the summed GIoU of the refined segments whose *input* segment matches a
    ground truth at ``iou_thr``, over an EMA of their count.

    Args:
        in_channels: channels of the finest level.
        iou_thr: matching threshold of the input segments.
        loss_loc: upstream's placeholder, not used (the loss is :func:`giou_loss`).
        extractor: the built ``roi_extractor`` (made by :meth:`from_config`).
    """

    def __init__(
        self,
        *,
        in_channels: int = 256,
        iou_thr: float = 0.7,
        loss_loc: Optional[Mapping[str, Any]] = None,
        extractor: nn.Module,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.iou_thr = iou_thr
        self.roi_extractor = extractor
        self.start_conv = _offset_branch(in_channels)
        self.end_conv = _offset_branch(in_channels)
        self.normalizer_reg = ForegroundEMA()

    @classmethod
    def from_config(cls, *, roi_extractor: Mapping[str, Any], **kwargs: Any) -> Dict[str, nn.Module]:
        """Build ``roi_extractor`` (``ROI_HEADS``)."""
        return dict(extractor=build(roi_extractor, ROI_HEADS))

    def refine(self, feats: Sequence[torch.Tensor], proposals: torch.Tensor) -> torch.Tensor:
        """Refined segments ``[B, N, 2]`` of ``proposals [B, N, 2]`` on levels ``[B, C, T_l]`` (the first is read)."""
        start_feats, end_feats = self.roi_extractor(feats[0], proposals).chunk(2, dim=-1)
        batch, num = proposals.shape[:2]
        start = proposals[..., 0] + self.start_conv(start_feats).reshape(batch, num)
        end = proposals[..., 1] + self.end_conv(end_feats).reshape(batch, num)
        return torch.stack((start, end), dim=-1)

    def forward_train(
        self,
        feats: Sequence[torch.Tensor],
        proposals: torch.Tensor,
        gt_segments: Sequence[torch.Tensor],
        gt_labels: Sequence[torch.Tensor],
    ) -> Dict[str, torch.Tensor]:
        """``{"loss_stage2_loc": scalar}``; gradients reach the features, the branches and ``proposals``."""
        refined = self.refine(feats, proposals)
        labels, targets = prepare_targets(proposals.detach(), gt_segments, gt_labels, self.iou_thr)
        pos = labels > 0
        normalizer = self.normalizer_reg.update(int(pos.sum()))
        return {"loss_stage2_loc": giou_loss(refined.reshape(-1, 2)[pos], targets[pos]) / normalizer}

    def forward_test(self, feats: Sequence[torch.Tensor], proposals: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Refined segments ``[B, N, 2]``."""
        return self.refine(feats, proposals)
