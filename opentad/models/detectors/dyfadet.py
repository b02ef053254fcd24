"""DyFADet (Yang et al., ECCV 2024) as a :class:`PyramidDetector`."""
from __future__ import annotations

from typing import Tuple

from opentad.models.detectors.base import BaseDetector
from opentad.models.detectors.pyramid import PyramidDetector
from opentad.registry import DETECTORS

__all__ = ["DyFADet"]


@DETECTORS.register_module()
class DyFADet(PyramidDetector):
    """Dynamic-encoder projection (``DynEProj``) and dynamic head (``TDynHead``), inputs not padded.

    As upstream (a ``SingleStageDetector``), the dataset's length is used. The
    only difference from :class:`PyramidDetector` is the optimizer split: the
    cross-scale mixing weights ``scale_weight`` / ``output_weight`` of the head do not decay.
    """

    no_decay_suffixes: Tuple[str, ...] = BaseDetector.no_decay_suffixes + ("scale_weight", "output_weight")
