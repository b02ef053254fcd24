"""The one-stage pyramid detector: :class:`BaseDetector` with a required projection and head.

ActionFormer, TriDet, TemporalMaxer, DyFADet and VideoMambaSuite are this
class plus class attributes (and, for the first two, the padding of
:meth:`PyramidDetector.prepare_feat`).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.detectors.base import BaseDetector

__all__ = ["PyramidDetector"]


class PyramidDetector(BaseDetector):
    """``[backbone ->] projection -> [neck ->] rpn_head``, the projection and head required (not registered).

    A missing ``projection`` or ``rpn_head`` is reported by the config check
    (``"<Detector> is missing required config key(s) ['rpn_head']"``), since both
    are required keywords of the constructor and of :meth:`from_config`.

    When ``window_attr`` names a projection attribute (one window size per
    pyramid level), features are zero-padded (mask False) before the
    projection to ``projection.max_seq_len``, or, when longer, to the next
    multiple of ``max_div_factor``, the largest :meth:`level_divisor` over the
    levels (``rpn_head.prior_generator.strides``), so every level splits evenly.

    Args:
        projection: the pyramid ``(x [B, C, T], masks [B, T]) -> (feats, masks)``.
        rpn_head: a dense head (with ``prior_generator.strides`` when padding).
        neck: optional neck.
        backbone: optional end-to-end backbone.

    Raises:
        ValueError: the window sizes and the strides differ in number (or :meth:`level_divisor` refuses a level).
    """

    #: hook: the projection attribute with one window size per level; None: no padding
    window_attr: Optional[str] = None

    def __init__(
        self,
        *,
        projection: nn.Module,
        rpn_head: nn.Module,
        neck: Optional[nn.Module] = None,
        backbone: Optional[nn.Module] = None,
    ):
        super().__init__(backbone=backbone, projection=projection, neck=neck, rpn_head=rpn_head)
        if self.window_attr is None:
            return
        windows = list(getattr(projection, self.window_attr))
        strides = rpn_head.prior_generator.strides
        if len(strides) != len(windows):
            raise ValueError(
                f"{type(self).__name__}: {len(strides)} prior_generator strides but {len(windows)} "
                f"projection.{self.window_attr} entries; they must match"
            )
        self.max_seq_len = projection.max_seq_len
        self.max_div_factor = max([1] + [self.level_divisor(s, w) for s, w in zip(strides, windows)])

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

    def level_divisor(self, stride: int, window: int) -> int:
        """Hook: the length one level's input must be a multiple of (here ``stride * window``, ``stride`` if 1)."""
        return stride * window if window > 1 else stride

    def prepare_feat(self, x: torch.Tensor, masks: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Zero-pad ``x [B, C, T]`` and ``masks [B, T]`` to the length the pyramid needs (if ``window_attr``)."""
        length = x.shape[-1]
        if self.window_attr is None:
            return x, masks
        if length <= self.max_seq_len:
            target = self.max_seq_len
        else:
            target = -(-length // self.max_div_factor) * self.max_div_factor
        if target == length:
            return x, masks
        return F.pad(x, (0, target - length)), F.pad(masks, (0, target - length), value=False)
