"""DyFADet (Yang et al., ECCV 2024) as a :class:`BaseDetector` variant."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import torch.nn as nn

from opentad.models.detectors.base import BaseDetector
from opentad.registry import DETECTORS

__all__ = ["DyFADet"]


@DETECTORS.register_module()
class DyFADet(BaseDetector):
    """Dynamic-encoder projection (``DynEProj``) and dynamic head (``TDynHead``) on the plain frame.

    As upstream (a ``SingleStageDetector``), inputs are not padded: the dataset's length is
    used. The only difference from :class:`BaseDetector` is the optimizer split: the
    cross-scale mixing weights ``scale_weight`` / ``output_weight`` of the head do not decay.

    Args:
        projection: e.g. ``DynEProj``.
        rpn_head: e.g. ``TDynHead``.
        neck: optional neck.
        backbone: optional end-to-end backbone.
    """

    no_decay_suffixes: Tuple[str, ...] = BaseDetector.no_decay_suffixes + ("scale_weight", "output_weight")

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
