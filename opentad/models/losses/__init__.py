"""Losses (registry ``LOSSES``)."""
from opentad.models.losses.focal_loss import FocalLoss, sigmoid_focal_loss
from opentad.models.losses.iou_loss import DIOULoss, GIOULoss
from opentad.models.losses.assigner import AnchorFreeSimOTAAssigner
from opentad.models.losses.softmax_focal_loss import SoftmaxFocalLoss
from opentad.models.losses.multi_segment_loss import MultiSegmentLoss
from opentad.models.losses.start_end_loss import StartEndLoss
from opentad.models.losses.balanced_bce_loss import BalancedBCELoss
from opentad.models.losses.balanced_l2_loss import BalancedL2Loss
from opentad.models.losses.scale_invariant_loss import ScaleInvariantLoss
from opentad.models.losses.balanced_ce_loss import BalancedCELoss

__all__ = ["FocalLoss", "sigmoid_focal_loss", "DIOULoss", "GIOULoss", "AnchorFreeSimOTAAssigner"]
__all__ += ["SoftmaxFocalLoss", "MultiSegmentLoss", "StartEndLoss"]
__all__ += ["ScaleInvariantLoss"]
__all__ += ["BalancedBCELoss", "BalancedL2Loss"]
__all__ += ["BalancedCELoss"]
