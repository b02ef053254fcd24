"""TriDet (Shi et al., CVPR 2023) as a :class:`BaseDetector` variant."""
from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.detectors.base import BaseDetector
from opentad.registry import DETECTORS

__all__ = ["TriDet"]

logger = logging.getLogger(__name__)


@DETECTORS.register_module()
class TriDet(BaseDetector):
    """SGP feature pyramid (``TriDetProj``) and Trident head (``TriDetHead``).

    Outside training (inference, validation losses) features are zero-padded
    (mask False) to ``max_seq_len``, or, when longer, to the next multiple of
    the largest ``stride * sgp_win_size`` (``stride`` where the window is 1)
    over the levels; in training they enter as the pipeline made them, as
    upstream. The head predicts one segment per (point, class), so the pre-NMS
    selection picks each candidate's own class's segment.

    Args:
        projection: a projection with ``max_seq_len`` and ``sgp_win_size``.
        rpn_head: a head whose ``prior_generator`` has ``strides``.
        neck: optional neck.
        backbone: optional end-to-end backbone.

    Raises:
        ValueError: ``sgp_win_size`` and the strides differ in number.
    """

    def __init__(
        self,
        *,
        projection: nn.Module,
        rpn_head: nn.Module,
        neck: Optional[nn.Module] = None,
        backbone: Optional[nn.Module] = None,
    ):
        super().__init__(backbone=backbone, projection=projection, neck=neck, rpn_head=rpn_head)
        self.max_seq_len = projection.max_seq_len
        strides = rpn_head.prior_generator.strides
        windows = list(projection.sgp_win_size)
        if len(windows) != len(strides):
            raise ValueError(
                f"TriDet: {len(strides)} prior_generator strides but {len(windows)} projection.sgp_win_size "
                "entries; they must match"
            )
        self.max_div_factor = max([1] + [s * w if w > 1 else s for s, w in zip(strides, windows)])

    @classmethod
    def from_config(
        cls,
        *,
        projection: Mapping[str, Any],
        rpn_head: Mapping[str, Any],
        neck: Optional[Mapping[str, Any]] = None,
        backbone: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Optional[nn.Module]]:
        """As :meth:`BaseDetector.from_config`, with ``projection`` and ``rpn_head`` required."""
        return super().from_config(backbone=backbone, projection=projection, neck=neck, rpn_head=rpn_head)

    def prepare_feat(self, x: torch.Tensor, masks: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Outside training, zero-pad ``x [B, C, T]`` and ``masks [B, T]`` to the length the pyramid needs."""
        if self.training:
            return x, masks
        length = x.shape[-1]
        if length <= self.max_seq_len:
            target = self.max_seq_len
        else:
            target = -(-length // self.max_div_factor) * self.max_div_factor
        if target == length:
            return x, masks
        return F.pad(x, (0, target - length)), F.pad(masks, (0, target - length), value=False)

    def select_candidates(
        self, proposals: torch.Tensor, scores: torch.Tensor, *, pre_nms_thresh: float, pre_nms_topk: int
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Upstream's pre-NMS selection over (point, class) pairs, each with its class's segment.

        Args:
            proposals: ``[P, C, 2]`` class-specific segments of one video.
            scores: ``[P, C]``.
            pre_nms_thresh, pre_nms_topk: see :func:`select_topk_predictions`.

        Returns:
            ``(segments [K, 2], scores [K], labels [K])``.

        Raises:
            ValueError: ``proposals`` is not ``[P, C, 2]``.
        """
        if proposals.dim() != 3 or proposals.shape[:2] != scores.shape:
            raise ValueError(
                f"TriDet expects class-specific proposals [P, C, 2] matching scores {tuple(scores.shape)}, "
                f"got {tuple(proposals.shape)}"
            )
        segments, scores, labels = super().select_candidates(
            proposals, scores, pre_nms_thresh=pre_nms_thresh, pre_nms_topk=pre_nms_topk
        )
        return segments[torch.arange(segments.shape[0]), labels], scores, labels
