"""Proposal generators of the second stage (registry ``ROI_HEADS``)."""
from .dense_map import DenseProposalMap
from .sample_map import ProposalMapSampling

__all__ = ["DenseProposalMap"]
__all__ += ["ProposalMapSampling"]
