"""Projections: turn backbone features into a feature pyramid (registry ``PROJECTIONS``)."""
from opentad.models.projections.actionformer_proj import Conv1DTransformerProj

__all__ = ["Conv1DTransformerProj"]
