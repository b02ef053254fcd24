"""TemporalMaxer (Tang et al., 2023) as a :class:`BaseDetector` variant."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import torch.nn as nn

from opentad.models.detectors.base import BaseDetector
from opentad.registry import DETECTORS

__all__ = ["TemporalMaxer"]


@DETECTORS.register_module()
class TemporalMaxer(BaseDetector):
    """Max-pooling feature pyramid (``TemporalMaxerProj``) and a SimOTA-trained head (``TemporalMaxerHead``).

    The single-stage frame as it is: no padding of the input (the pyramid
    levels have ``ceil(T / 2^l)`` steps), upstream's two AdamW groups
    (:meth:`BaseDetector.get_optim_groups`).

    Args:
        projection: the pyramid, e.g. ``TemporalMaxerProj``.
        rpn_head: the head, e.g. ``TemporalMaxerHead``.
        neck: optional neck (upstream: ``FPNIdentity``).
        backbone: optional end-to-end backbone.
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
