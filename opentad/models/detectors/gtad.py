"""G-TAD (Xu et al., CVPR 2020) as a :class:`BMN`: GCNeXt graph features and sub-graph alignment."""
from __future__ import annotations

from typing import Tuple

from opentad.models.detectors.bmn import BMN
from opentad.registry import DETECTORS

__all__ = ["GTAD"]


@DETECTORS.register_module()
class GTAD(BMN):
    """BMN's frame and post-processing with G-TAD's parts named by the config.

    ``projection -> neck`` (``GCNeXt``) ``-> rpn_head``
    (``GCNextTemporalEvaluationHead``) and ``roi_head`` (a proposal map whose
    extractor is ``GTADExtractor``). Unlike BMN, the layers keep PyTorch's
    default initialisation (upstream's G-TAD skips BMN's ``reset_params``).

    Args:
        projection, rpn_head, roi_head, neck, backbone: as :class:`BMN`.
    """

    xavier_types: Tuple[type, ...] = ()
