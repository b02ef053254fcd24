"""Upstream OpenTAD's model builder names, as thin calls of :func:`opentad.registry.build`.

Scripts written for upstream (``from opentad.models import build_detector``)
run unchanged. Upstream keeps every model part in one registry, so its
``build_head`` would also build a neck; here each name looks in the registry
of its kind (docs/architecture.md), and a type of another kind is an error
naming the registered ones. Upstream's ``build_transformer``,
``build_matcher`` and ``build_proposal_generator`` have no components in
this project and are not provided (docs/migration.md).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from opentad.registry import (
    BACKBONES,
    DETECTORS,
    HEADS,
    LOSSES,
    NECKS,
    PRIOR_GENERATORS,
    PROJECTIONS,
    ROI_HEADS,
    build,
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


def build_detector(cfg: Optional[Mapping[str, Any]], **default_args: Any) -> Any:
    """A detector (``cfg.model``, e.g. ``type="ActionFormer"``) from :data:`~opentad.registry.DETECTORS`.

    Args:
        cfg: the config mapping with a ``type`` key (not modified); None gives None.
        **default_args: values for keys the config leaves out.

    Raises:
        ConfigError: unknown type (the message lists the registered ones) or keys that do not bind.
    """
    return build(cfg, DETECTORS, **default_args)


def build_backbone(cfg: Optional[Mapping[str, Any]], **default_args: Any) -> Any:
    """A backbone, or the backbone wrapper (``type="mmaction.Recognizer3D"``, as upstream's ``BackboneWrapper(cfg)``).

    Args and Raises: see :func:`build_detector` (registry :data:`~opentad.registry.BACKBONES`).
    """
    return build(cfg, BACKBONES, **default_args)


def build_projection(cfg: Optional[Mapping[str, Any]], **default_args: Any) -> Any:
    """A projection (e.g. ``Conv1DTransformerProj``); see :func:`build_detector`."""
    return build(cfg, PROJECTIONS, **default_args)


def build_neck(cfg: Optional[Mapping[str, Any]], **default_args: Any) -> Any:
    """A neck (e.g. ``FPNIdentity``); see :func:`build_detector`."""
    return build(cfg, NECKS, **default_args)


def build_head(cfg: Optional[Mapping[str, Any]], **default_args: Any) -> Any:
    """A dense head (e.g. ``ActionFormerHead``); see :func:`build_detector`."""
    return build(cfg, HEADS, **default_args)


def build_loss(cfg: Optional[Mapping[str, Any]], **default_args: Any) -> Any:
    """A loss (e.g. ``FocalLoss``, ``DIOULoss``); see :func:`build_detector`."""
    return build(cfg, LOSSES, **default_args)


def build_roi_extractor(cfg: Optional[Mapping[str, Any]], **default_args: Any) -> Any:
    """An RoI extractor or RoI head (registry :data:`~opentad.registry.ROI_HEADS`); see :func:`build_detector`."""
    return build(cfg, ROI_HEADS, **default_args)


def build_prior_generator(cfg: Optional[Mapping[str, Any]], **default_args: Any) -> Any:
    """A prior generator (e.g. ``PointGenerator``); see :func:`build_detector`."""
    return build(cfg, PRIOR_GENERATORS, **default_args)
