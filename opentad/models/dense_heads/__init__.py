"""Dense heads (registry ``HEADS``) and prior generators (registry ``PRIOR_GENERATORS``)."""
from opentad.models.dense_heads.prior_generator import PointGenerator
from opentad.models.dense_heads.anchor_free_head import AnchorFreeHead
from opentad.models.dense_heads.actionformer_head import ActionFormerHead

__all__ = ["PointGenerator", "AnchorFreeHead", "ActionFormerHead"]
