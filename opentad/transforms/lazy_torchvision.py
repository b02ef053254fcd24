"""torchvision, imported when a frame transform first runs, not when this package is imported.

Importing torchvision takes seconds of CPU (its ops pull in ``torch._dynamo``); every process imports
:mod:`opentad.transforms` through the registries, but only end-to-end runs transform frames.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["TF", "interpolation_mode"]


class _LazyModule:
    """Attribute access imports the named module (once: ``sys.modules`` caches it) and reads from it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


#: ``torchvision.transforms.v2.functional``, imported on first use
TF = _LazyModule("torchvision.transforms.v2.functional")


def interpolation_mode(name: str) -> Any:
    """``torchvision.transforms.InterpolationMode`` member of ``name`` ("nearest", "bilinear", "bicubic").

    Raises:
        KeyError: an unknown name.
    """
    from torchvision.transforms import InterpolationMode

    return InterpolationMode[name.upper()]
