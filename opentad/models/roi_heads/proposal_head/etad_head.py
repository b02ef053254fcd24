"""ETAD's proposal head: IoU scores, boundary probabilities and boundary regression of each proposal."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.bricks.fc import ConvFC, FCHead
from opentad.models.losses.balanced_l2_loss import BalancedL2Loss
from opentad.models.losses.sampled_bce_loss import SampledBCELoss
from opentad.models.utils.iou_tools import compute_batched_iou_torch
from opentad.registry import ROI_HEADS, bind

__all__ = ["ETADHead", "ETADLossOptions", "refine_proposals", "regression_targets"]

logger = logging.getLogger(__name__)

Outputs = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class ETADLossOptions:
    """``loss``: weights of the IoU classification / regression and boundary regression terms, and the
    IoU above which a proposal's boundaries are regressed (upstream's ``ETADRoIHead`` sets it per stage)."""

    cls_weight: float = 1.0
    reg_weight: float = 5.0
    boundary_weight: float = 10.0
    pos_iou_thresh: float = 0.7


@torch.no_grad()
def refine_proposals(anchors: torch.Tensor, regs: torch.Tensor) -> torch.Tensor:
    """Mean of the boundary-decoded and the centre/width-decoded proposals (no gradient).

    With length ``l`` and centre ``c`` of ``anchors [B, K, 2]`` and
    ``regs [B, K, 4] = (ds, de, dc, dw)``: the first decoding has length
    ``l (1 + de - ds)`` and centre ``c + l (ds + de) / 2``, the second centre
    ``c + dc l`` and length ``l exp(dw)``; their starts and ends are averaged.

    Returns:
        ``[B, K, 2]``.
    """
    regs = regs.detach().view(anchors.shape[0], -1, regs.shape[-1])
    length = anchors[..., 1] - anchors[..., 0]
    centre = (anchors[..., 0] + anchors[..., 1]) * 0.5
    length1 = length + length * (regs[..., 1] - regs[..., 0])
    centre1 = centre + length * (regs[..., 0] + regs[..., 1]) * 0.5
    centre2 = centre + regs[..., 2] * length
    length2 = length * torch.exp(regs[..., 3])
    start = ((centre1 - length1 * 0.5) + (centre2 - length2 * 0.5)) * 0.5
    end = ((centre1 + length1 * 0.5) + (centre2 + length2 * 0.5)) * 0.5
    return torch.stack((start, end), dim=2)


def regression_targets(gt: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """``[B, K, 4]`` = ``(ds, de, dc, dw)`` of matched ground truth ``gt [B, K, 2]`` against ``anchors [B, K, 2]``.

    ``ds``, ``de``: boundary offsets over the anchor length; ``dc = (ds + de) / 2``;
    ``dw = log(gt length / anchor length + 1e-6)`` (lengths clamped to ``1e-6``).
    """
    anchor_len = (anchors[..., 1] - anchors[..., 0]).clamp(min=1e-6)
    gt_len = (gt[..., 1] - gt[..., 0]).clamp(min=1e-6)
    delta_s = (gt[..., 0] - anchors[..., 0]) / anchor_len
    delta_e = (gt[..., 1] - anchors[..., 1]) / anchor_len
    delta_c = (delta_s + delta_e) * 0.5
    delta_w = torch.log(gt_len / anchor_len + 1e-6)
    return torch.stack((delta_s, delta_e, delta_c, delta_w), dim=-1)


def masked_smooth_l1(pred: torch.Tensor, gt_iou: torch.Tensor, target: torch.Tensor, thresh: float) -> torch.Tensor:
    """Smooth-L1 averaged over the proposals with IoU above ``thresh`` (a constant 0 without any)."""
    mask = (gt_iou > thresh).float()
    if mask.sum() == 0:
        return pred.new_zeros(())
    return (F.smooth_l1_loss(pred, target, reduction="none") * mask).sum() / mask.sum()


@ROI_HEADS.register_module()
class ETADHead(nn.Module):
    """Per proposal, from its RoI features ``[C, R]``: ``shared_conv_fc`` (one fc) then three :class:`FCHead`.

    ``iou_head`` gives 2 IoU probabilities (one trained as classification, one
    as regression), ``se_head`` start and end probabilities, ``reg_head`` the
    4 offsets of :func:`refine_proposals`. State-dict keys are upstream's
    (``shared_conv_fc.fcs.0.0.*``, ``{iou,se,reg}_head.fcs.{i}.0.*``, ``{iou,se,reg}_head.head.*``).

    The loss ``loss_pem`` is ``cls_weight * SampledBCE_0.9(iou0) + reg_weight * BalancedL2(iou1)
    + boundary_weight * sum of the 4 masked smooth-L1 terms + (SampledBCE_0.5(start) + SampledBCE_0.5(end)) / 2``
    against the IoU with the matched ground truth, the :func:`regression_targets` and the
    startness / endness at the proposal's (truncated) start and end steps; random draws in upstream's order.

    Args:
        in_channels: ``C`` of the RoI features.
        roi_size: ``R``.
        feat_channels: width of the shared fc.
        fcs_num: hidden stages of each head.
        fcs_channels: their width.
        loss: :class:`ETADLossOptions` keys.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        roi_size: int,
        feat_channels: int,
        fcs_num: int,
        fcs_channels: int,
        loss: Optional[Mapping[str, Any]] = None,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.roi_size = roi_size
        self.feat_channels = feat_channels
        self.loss_cfg = bind(ETADLossOptions, loss, path=f"{type(self).__name__}.loss")
        self.pos_iou_thresh = self.loss_cfg.pos_iou_thresh
        self.shared_conv_fc = ConvFC(
            in_channels=in_channels, roi_size=roi_size, convs_num=0, fcs_num=1, fcs_channel=feat_channels
        )

        def head(out_channels: int) -> FCHead:
            return FCHead(
                in_channels=feat_channels, out_channels=out_channels, fcs_num=fcs_num, fcs_channel=fcs_channels
            )

        self.iou_head = head(2)
        self.se_head = head(2)
        self.reg_head = head(4)
        self.iou_cls_loss = SampledBCELoss(pos_thresh=0.9)
        self.iou_reg_loss = BalancedL2Loss(high_thresh=0.7, low_thresh=0.3)
        self.boundary_loss = SampledBCELoss(pos_thresh=0.5)

    def predict(self, proposal_feats: torch.Tensor) -> Outputs:
        """``[B, K, C, R]`` -> IoU ``[B, K, 2]`` (sigmoid), offsets ``[B, K, 4]``, start/end ``[B, K, 2]`` (sigmoid)."""
        bs, num = proposal_feats.shape[:2]
        feats = self.shared_conv_fc(proposal_feats.flatten(0, 1))
        iou = self.iou_head(feats).sigmoid().unflatten(0, (bs, num))
        reg = self.reg_head(feats).unflatten(0, (bs, num))
        se = self.se_head(feats).sigmoid().unflatten(0, (bs, num))
        return iou, reg, se

    def forward_train(self, proposal_feats, proposal_list, gt_starts, gt_ends, batch_gt_segment):
        """``({"loss_pem": scalar}, refined proposals [B, K, 2])``.

        Args:
            proposal_feats: ``[B, K, C, R]``; proposal_list: ``[B, K, 2]``.
            gt_starts, gt_ends: ``[B, T]`` startness / endness; batch_gt_segment: ``[B, K, 2]`` matched ground truth.
        """
        iou, reg, se = self.predict(proposal_feats)
        losses = self.losses(iou, reg, se, proposal_list, gt_starts, gt_ends, batch_gt_segment)
        return losses, refine_proposals(proposal_list, reg)

    def forward_test(self, proposal_feats: torch.Tensor, proposal_list: torch.Tensor):
        """``(refined proposals [B, K, 2], IoU probabilities [B, K, 2])``."""
        iou, reg, _ = self.predict(proposal_feats)
        return refine_proposals(proposal_list, reg), iou

    @torch.no_grad()
    def prepare_targets(self, proposals, gt_starts, gt_ends, batch_gt_segment) -> Tuple[torch.Tensor, ...]:
        """IoU ``[B, K]``, offsets ``[B, K, 4]``, startness and endness at the proposals' boundaries ``[B, K]``."""
        gt_iou = compute_batched_iou_torch(batch_gt_segment, proposals)
        gt_reg = regression_targets(batch_gt_segment, proposals)
        start = proposals[..., 0].long().clamp(min=0, max=gt_starts.shape[1] - 1)
        end = proposals[..., 1].long().clamp(min=0, max=gt_ends.shape[1] - 1)
        return gt_iou, gt_reg, torch.gather(gt_starts, 1, start), torch.gather(gt_ends, 1, end)

    def losses(self, iou, reg, se, proposal_list, gt_starts, gt_ends, batch_gt_segment) -> Dict[str, torch.Tensor]:
        """``{"loss_pem": scalar}`` (see the class docstring)."""
        gt_iou, gt_reg, gt_start, gt_end = self.prepare_targets(proposal_list, gt_starts, gt_ends, batch_gt_segment)
        opts = self.loss_cfg
        loss_iou = self.iou_cls_loss(iou[..., 0], gt_iou) * opts.cls_weight
        loss_iou = loss_iou + self.iou_reg_loss(iou[..., 1], gt_iou) * opts.reg_weight
        loss_reg = sum(masked_smooth_l1(reg[..., i], gt_iou, gt_reg[..., i], self.pos_iou_thresh) for i in range(4))
        loss_se = 0.5 * (self.boundary_loss(se[..., 0], gt_start) + self.boundary_loss(se[..., 1], gt_end))
        return {"loss_pem": loss_iou + opts.boundary_weight * loss_reg + loss_se}
