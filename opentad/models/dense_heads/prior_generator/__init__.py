"""Prior (point/anchor) generators (registry ``PRIOR_GENERATORS``)."""
from opentad.models.dense_heads.prior_generator.point_generator import PointGenerator

__all__ = ["PointGenerator"]
