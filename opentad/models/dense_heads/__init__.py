"""Dense heads (registry ``HEADS``) and prior generators (registry ``PRIOR_GENERATORS``)."""
from opentad.models.dense_heads.prior_generator import PointGenerator
from opentad.models.dense_heads.anchor_free_head import AnchorFreeHead
from opentad.models.dense_heads.actionformer_head import ActionFormerHead
from opentad.models.dense_heads.dyn_head import TDynHead
from opentad.models.dense_heads.tridet_head import TriDetHead
from opentad.models.dense_heads.temporalmaxer_head import TemporalMaxerHead

__all__ = ["PointGenerator", "AnchorFreeHead", "ActionFormerHead"]
__all__ += ["TDynHead"]
__all__ += ["TriDetHead"]
__all__ += ["TemporalMaxerHead"]
