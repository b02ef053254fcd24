"""RoI feature extractors and the pooling ops behind them.

Nothing here needs a compiled op: ``align1d`` and ``boundary_pooling`` load
theirs lazily at first use and fall back to pure PyTorch.
"""

from .align1d import Align1DLayer, align1d
from .boundary_pooling import BoundaryMaxPooling, boundary_max_pooling
from .roialign_extractor import ROIAlignExtractor

__all__ = ["ROIAlignExtractor", "Align1DLayer", "align1d", "BoundaryMaxPooling", "boundary_max_pooling"]
