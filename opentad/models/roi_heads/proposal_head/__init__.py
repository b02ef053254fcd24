"""Proposal heads of the second stage (registry ``ROI_HEADS``)."""
from .pem_head import PEMHead
from .etad_head import ETADHead
from .tsi_head import TSIHead

__all__ = ["PEMHead"]
__all__ += ["ETADHead"]
__all__ += ["TSIHead"]
