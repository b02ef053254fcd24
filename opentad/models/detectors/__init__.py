"""Detectors (registry ``DETECTORS``)."""
from opentad.models.detectors.base import BaseDetector
from opentad.models.detectors.actionformer import ActionFormer

__all__ = ["BaseDetector", "ActionFormer"]
