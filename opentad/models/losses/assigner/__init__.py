"""Target assigners built from the ``LOSSES`` registry (as upstream OpenTAD registers them)."""
from opentad.models.losses.assigner.anchor_free_simota_assigner import AnchorFreeSimOTAAssigner

__all__ = ["AnchorFreeSimOTAAssigner"]
