"""Necks between projection and head (registry ``NECKS``)."""
from opentad.models.necks.fpn import FPNIdentity
from opentad.models.necks.afsd_neck import AFSDNeck
from opentad.models.necks.etad_lstm import LSTMNeck
from opentad.models.bricks.gcnext import GCNeXt  # registers the brick as a neck (G-TAD)
from opentad.models.necks.vsgn_fpn import VSGNFPN

__all__ = ["FPNIdentity"]
__all__ += ["AFSDNeck"]
__all__ += ["GCNeXt"]
__all__ += ["LSTMNeck"]
__all__ += ["VSGNFPN"]
