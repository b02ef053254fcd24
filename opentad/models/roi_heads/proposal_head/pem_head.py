"""BMN's proposal evaluation module (PEM): 2D convs over the proposal map, IoU targets."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence

import torch
import torch.nn as nn

from opentad.models.utils.iou_tools import compute_iou_torch
from opentad.registry import LOSSES, ROI_HEADS, build

__all__ = ["PEMHead", "proposal_iou_targets"]


@torch.no_grad()
def proposal_iou_targets(proposals: torch.Tensor, gt_segments: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[B, N]``: the best IoU of each proposal ``[N, 2]`` with each sample's ground truth ``[K_b, 2]``."""
    proposals = proposals.to(gt_segments[0].device)
    return torch.stack([compute_iou_torch(gt, proposals).max(dim=1)[0] for gt in gt_segments])


@ROI_HEADS.register_module()
class PEMHead(nn.Module):
    """``num_convs`` x (Conv2d ``kernel_size`` + ReLU), then a 1x1 Conv2d to ``num_classes`` maps.

    Upstream pads each conv by ``kernel_size // 3`` (1 for 3x3, 0 for 1x1); kept.
    Channel 0 is the classification confidence (``loss.cls_loss``, e.g.
    ``BalancedBCELoss``), channel 1 the regressed IoU (``loss.reg_loss``, e.g.
    ``BalancedL2Loss``), both trained on the sigmoid of the valid map entries
    against the best IoU with the ground truth. Keys ``head.{i}.0.*`` and
    ``head.{num_convs}.*`` as upstream.

    Args:
        in_channels: channels of the map features.
        feat_channels: channels of the hidden convs.
        num_classes: output maps (2).
        num_convs: hidden conv blocks.
        kernel_size: of the hidden convs.
        cls_loss, reg_loss: built by :meth:`from_config` from ``loss=dict(cls_loss=..., reg_loss=...)``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        feat_channels: int,
        num_classes: int,
        num_convs: int,
        cls_loss: nn.Module,
        reg_loss: nn.Module,
        kernel_size: int = 3,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.num_classes = num_classes
        self.num_convs = num_convs
        self.kernel_size = kernel_size
        self.head = self.make_layers()
        self.cls_loss = cls_loss
        self.reg_loss = reg_loss

    @classmethod
    def from_config(cls, *, loss: Mapping[str, Any], **kwargs: Any) -> Dict[str, nn.Module]:
        """``cls_loss`` and ``reg_loss`` from ``loss`` (registry ``LOSSES``).

        Raises:
            KeyError: ``loss`` lacks ``cls_loss`` or ``reg_loss``.
        """
        missing = [key for key in ("cls_loss", "reg_loss") if key not in loss]
        if missing:
            raise KeyError(f"{cls.__name__}.loss needs {missing}, got keys {sorted(loss)}")
        return dict(cls_loss=build(loss["cls_loss"], LOSSES), reg_loss=build(loss["reg_loss"], LOSSES))

    def make_layers(self) -> nn.Sequential:
        """Hook: ``[B, in_channels, D, T] -> [B, num_classes, D, T]``."""
        head = nn.Sequential()
        for i in range(self.num_convs):
            conv = nn.Conv2d(
                self.in_channels if i == 0 else self.feat_channels,
                self.feat_channels,
                kernel_size=self.kernel_size,
                padding=self.kernel_size // 3,
            )
            head.append(nn.Sequential(conv, nn.ReLU(inplace=True)))
        head.append(nn.Conv2d(self.feat_channels, self.num_classes, kernel_size=1))
        return head

    def forward_train(
        self,
        proposal_feats: torch.Tensor,
        proposal_map: torch.Tensor,
        valid_mask: torch.Tensor,
        gt_segments: Sequence[torch.Tensor],
    ) -> Dict[str, torch.Tensor]:
        """``{"loss_cls", "loss_reg"}`` of the map ``proposal_feats [B, C, D, T]``."""
        return self.losses(self.head(proposal_feats), proposal_map, valid_mask, gt_segments)

    def forward_test(self, proposal_feats: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes, D, T]``."""
        return self.head(proposal_feats)

    def prepare_targets(self, proposals: torch.Tensor, gt_segments: Sequence[torch.Tensor]) -> torch.Tensor:
        """Hook: ``[B, N]`` targets of the valid proposals ``[N, 2]`` (:func:`proposal_iou_targets`)."""
        return proposal_iou_targets(proposals, gt_segments)

    def losses(
        self,
        pred: torch.Tensor,
        proposal_map: torch.Tensor,
        valid_mask: torch.Tensor,
        gt_segments: Sequence[torch.Tensor],
    ) -> Dict[str, torch.Tensor]:
        """Hook: the two losses of ``pred [B, 2, D, T]`` on the entries of ``valid_mask [D, T]``.

        Args:
            pred: logits.
            proposal_map: ``[D, T, 2]`` proposals in steps.
            valid_mask: ``[D, T]`` bool.
            gt_segments: per sample ``[K, 2]``.
        """
        prob = pred[:, :, valid_mask].sigmoid()  # [B, 2, N]
        gt_ious = self.prepare_targets(proposal_map[valid_mask], gt_segments)
        return {"loss_cls": self.cls_loss(prob[:, 0], gt_ious), "loss_reg": self.reg_loss(prob[:, 1], gt_ious)}
