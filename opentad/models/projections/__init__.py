"""Projections: turn backbone features into a feature pyramid (registry ``PROJECTIONS``)."""
from opentad.models.projections.actionformer_proj import Conv1DTransformerProj
from opentad.models.projections.dyne_proj import DynEProj
from opentad.models.projections.tridet_proj import TriDetProj
from opentad.models.projections.temporalmaxer_proj import TemporalMaxerProj
from opentad.models.projections.mamba_proj import MambaProj
from opentad.models.projections.causal_proj import CausalProj
from opentad.models.projections.mlp_proj import ConvSingleProj
from opentad.models.projections.vsgn_proj import VSGNPyramidProj

__all__ = ["Conv1DTransformerProj"]
__all__ += ["DynEProj"]
__all__ += ["TriDetProj"]
__all__ += ["TemporalMaxerProj"]
__all__ += ["MambaProj", "CausalProj"]
__all__ += ["ConvSingleProj"]
__all__ += ["VSGNPyramidProj"]
