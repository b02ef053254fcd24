"""VideoMambaSuite's detector (also CausalTAD's): the single-stage frame with Mamba's parameters in the optimizer."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import torch.nn as nn

from opentad.models.detectors.base import BaseDetector
from opentad.registry import DETECTORS

__all__ = ["VideoMambaSuite"]


@DETECTORS.register_module()
class VideoMambaSuite(BaseDetector):
    """``projection -> neck -> rpn_head`` with no padding of the input (upstream's ``SingleStageDetector`` path).

    The only difference from :class:`BaseDetector` is the optimizer grouping:
    Mamba's ``A_log``, ``D`` (and ViM's ``A_b_log``, ``D_b``) weight-decay, as
    upstream's ``VideoMambaSuite.get_optim_groups`` puts them (its
    ``forward_embed`` / ``backward_embed`` too).

    Args:
        projection: e.g. ``MambaProj`` or ``CausalProj``.
        rpn_head: e.g. ``ActionFormerHead``.
        neck: optional neck.
        backbone: optional end-to-end backbone.
    """

    decay_suffixes = ("A_log", "D_b", "D", "A_b_log", "forward_embed", "backward_embed")

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
