"""TSI's proposal evaluation head: BMN's PEM with the scale-invariant confidence loss."""
from __future__ import annotations

from typing import Dict, Sequence

import torch

from opentad.models.roi_heads.proposal_head.pem_head import PEMHead
from opentad.registry import ROI_HEADS

__all__ = ["TSIHead"]


@ROI_HEADS.register_module()
class TSIHead(PEMHead):
    """:class:`PEMHead` whose ``cls_loss`` computes the IoU targets itself.

    ``cls_loss(prob [B, N], proposals [N, 2], gt_segments) -> (loss, gt_ious [B, N])``
    (``ScaleInvariantLoss``); ``reg_loss`` is then trained on those IoUs. Same
    layers and keys as :class:`PEMHead`.
    """

    def losses(
        self,
        pred: torch.Tensor,
        proposal_map: torch.Tensor,
        valid_mask: torch.Tensor,
        gt_segments: Sequence[torch.Tensor],
    ) -> Dict[str, torch.Tensor]:
        """``{"loss_cls", "loss_reg"}`` of ``pred [B, 2, D, T]`` on the entries of ``valid_mask [D, T]``.

        Args:
            pred: logits.
            proposal_map: ``[D, T, 2]`` proposals in steps.
            valid_mask: ``[D, T]`` bool.
            gt_segments: per sample ``[K, 2]``.
        """
        prob = pred[:, :, valid_mask].sigmoid()  # [B, 2, N]
        loss_cls, gt_ious = self.cls_loss(prob[:, 0], proposal_map[valid_mask], gt_segments)
        return {"loss_cls": loss_cls, "loss_reg": self.reg_loss(prob[:, 1], gt_ious)}
