"""ActionFormer (Zhang et al., ECCV 2022) as a :class:`BaseDetector` variant."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.detectors.base import BaseDetector
from opentad.registry import DETECTORS

__all__ = ["ActionFormer"]


@DETECTORS.register_module()
class ActionFormer(BaseDetector):
    """Feature pyramid from a local-attention transformer, anchor-free head.

    Before the projection, features are zero-padded (mask False) to
    ``max_seq_len``, or, when longer, to the next multiple of the largest
    ``stride * 2 * (window // 2)`` over the pyramid levels, so every level
    splits evenly into attention windows.

    Args:
        projection: a projection with ``max_seq_len`` and ``mha_win_size``
            (e.g. ``Conv1DTransformerProj``).
        rpn_head: a head whose ``prior_generator`` has ``strides``.
        neck: optional neck.
        backbone: optional end-to-end backbone.

    Raises:
        ValueError: ``max_seq_len`` is not a multiple of some level's
            ``stride * 2 * (window // 2)``, or window sizes and strides disagree in number.
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
        self.mha_win_size = list(projection.mha_win_size)
        self.max_seq_len = projection.max_seq_len
        strides = rpn_head.prior_generator.strides
        if len(strides) != len(self.mha_win_size):
            raise ValueError(
                f"ActionFormer: {len(strides)} prior_generator strides but {len(self.mha_win_size)} attention "
                "window sizes (1 + projection.arch[2]); they must match"
            )
        self.max_div_factor = 1
        for stride, window in zip(strides, self.mha_win_size):
            factor = stride * (window // 2) * 2 if window > 1 else stride
            if self.max_seq_len % factor != 0:
                raise ValueError(
                    f"ActionFormer: projection.max_seq_len={self.max_seq_len} must be divisible by "
                    f"stride * 2 * (window // 2) = {factor} (stride {stride}, window {window})"
                )
            self.max_div_factor = max(self.max_div_factor, factor)

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
        """Zero-pad ``x [B, C, T]`` and ``masks [B, T]`` to the length the pyramid needs."""
        length = x.shape[-1]
        if length < self.max_seq_len:
            target = self.max_seq_len
        else:
            target = -(-length // self.max_div_factor) * self.max_div_factor
        if target == length:
            return x, masks
        return F.pad(x, (0, target - length)), F.pad(masks, (0, target - length), value=False)
