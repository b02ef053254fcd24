"""Losses (registry ``LOSSES``)."""
from opentad.models.losses.focal_loss import FocalLoss, sigmoid_focal_loss
from opentad.models.losses.iou_loss import DIOULoss, GIOULoss
from opentad.models.losses.assigner import AnchorFreeSimOTAAssigner

__all__ = ["FocalLoss", "sigmoid_focal_loss", "DIOULoss", "GIOULoss", "AnchorFreeSimOTAAssigner"]
