"""Second-stage heads and RoI extractors, registered in ``ROI_HEADS``.

Importing this package never needs a compiled op (see :mod:`opentad.ops`).
"""

from .afsd_roi_head import AFSDRefineHead
from .roi_extractors import ROIAlignExtractor
from .unit1d import Unit1D

__all__ = ["AFSDRefineHead", "ROIAlignExtractor", "Unit1D"]
