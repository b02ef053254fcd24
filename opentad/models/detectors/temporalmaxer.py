"""TemporalMaxer (Tang et al., 2023) as a :class:`PyramidDetector`."""
from __future__ import annotations

from opentad.models.detectors.pyramid import PyramidDetector
from opentad.registry import DETECTORS

__all__ = ["TemporalMaxer"]


@DETECTORS.register_module()
class TemporalMaxer(PyramidDetector):
    """Max-pooling feature pyramid (``TemporalMaxerProj``) and a SimOTA-trained head (``TemporalMaxerHead``).

    The pyramid frame as it is: no padding of the input (the levels have
    ``ceil(T / 2^l)`` steps), upstream's two AdamW groups
    (:meth:`BaseDetector.get_optim_groups`); upstream's neck is ``FPNIdentity``.
    """
