"""Dense heads (registry ``HEADS``) and prior generators (registry ``PRIOR_GENERATORS``)."""
from opentad.models.dense_heads.prior_generator import PointGenerator
from opentad.models.dense_heads.anchor_free_head import AnchorFreeHead
from opentad.models.dense_heads.actionformer_head import ActionFormerHead
from opentad.models.dense_heads.dyn_head import TDynHead
from opentad.models.dense_heads.tridet_head import TriDetHead
from opentad.models.dense_heads.temporalmaxer_head import TemporalMaxerHead
from opentad.models.dense_heads.afsd_coarse_head import AFSDCoarseHead
from opentad.models.dense_heads.tem_head import TemporalEvaluationHead
from opentad.models.dense_heads.tem_variants import GCNextTemporalEvaluationHead, LocalGlobalTemporalEvaluationHead
from opentad.models.dense_heads.vsgn_rpn_head import VSGNRPNHead

__all__ = ["PointGenerator", "AnchorFreeHead", "ActionFormerHead"]
__all__ += ["TDynHead"]
__all__ += ["TriDetHead"]
__all__ += ["TemporalMaxerHead"]
__all__ += ["AFSDCoarseHead"]
__all__ += ["TemporalEvaluationHead"]
__all__ += ["GCNextTemporalEvaluationHead", "LocalGlobalTemporalEvaluationHead"]
__all__ += ["VSGNRPNHead"]
