"""RoI feature extractors and the pooling ops behind them.

Nothing here needs a compiled op: ``align1d`` and ``boundary_pooling`` load
theirs lazily at first use and fall back to pure PyTorch.
"""

from .align1d import Align1DLayer, align1d
from .boundary_pooling import BoundaryMaxPooling, boundary_max_pooling
from .roialign_extractor import ROIAlignExtractor
from .bmn_extractor import BMNExtractor
from .gtad_extractor import GTADExtractor
from .corner_extractor import CornerExtractor

__all__ = ["ROIAlignExtractor", "Align1DLayer", "align1d", "BoundaryMaxPooling", "boundary_max_pooling"]
__all__ += ["GTADExtractor"]
__all__ += ["BMNExtractor"]
__all__ += ["CornerExtractor"]
