"""Models: detectors and their parts, each registered in :mod:`opentad.registry`.

Upstream OpenTAD's builder names are importable from here
(``from opentad.models import build_detector``; :mod:`opentad.models.builder`).
"""
from .builder import (
    build_backbone,
    build_detector,
    build_head,
    build_loss,
    build_neck,
    build_prior_generator,
    build_projection,
    build_roi_extractor,
)

__all__ = [
    "build_detector",
    "build_backbone",
    "build_projection",
    "build_neck",
    "build_head",
    "build_loss",
    "build_roi_extractor",
    "build_prior_generator",
]
