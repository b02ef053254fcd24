"""Second-stage heads and RoI extractors, registered in ``ROI_HEADS``.

Importing this package never needs a compiled op (see :mod:`opentad.ops`).
"""

from .afsd_roi_head import AFSDRefineHead
from .roi_extractors import ROIAlignExtractor
from .unit1d import Unit1D
from .proposal_generator import DenseProposalMap
from .proposal_head import PEMHead
from .roi_extractors import BMNExtractor
from .standard_map_head import StandardProposalMapHead
from .proposal_generator import ProposalMapSampling
from .proposal_head import ETADHead
from .etad_roi_head import ETADRoIHead
from .vsgn_roi_head import VSGNRoIHead
from .proposal_head import TSIHead
from .roi_extractors import GTADExtractor

__all__ = ["AFSDRefineHead", "ROIAlignExtractor", "Unit1D"]
__all__ += ["DenseProposalMap", "PEMHead", "BMNExtractor", "StandardProposalMapHead"]
__all__ += ["ProposalMapSampling", "ETADHead", "ETADRoIHead"]
__all__ += ["VSGNRoIHead"]
__all__ += ["TSIHead", "GTADExtractor"]
