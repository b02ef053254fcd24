"""Models: detectors and their parts, each registered in :mod:`opentad.registry`.

Upstream OpenTAD's builder names are importable from here
(``from opentad.models import build_detector``; :mod:`opentad.models.builder`).
"""
from . import builder as _builder
from .builder import *  # noqa: F401,F403  (the names of builder.__all__)

__all__ = list(_builder.__all__)
