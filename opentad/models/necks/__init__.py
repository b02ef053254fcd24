"""Necks between projection and head (registry ``NECKS``)."""
from opentad.models.necks.fpn import FPNIdentity

__all__ = ["FPNIdentity"]
