"""AFSD's refinement head (upstream ``AFSDRefineHead``): boundary-pooled proposal features.

Module and parameter names follow upstream, so AFSD checkpoints load.
"""

from __future__ import annotations

from typing import List, NamedTuple, Sequence, Tuple

import torch
from torch import nn

from opentad.registry import ROI_HEADS

from .roi_extractors.boundary_pooling import BoundaryMaxPooling
from .unit1d import Unit1D, conv_gn_relu

__all__ = ["AFSDRefineHead", "AFSDRefineOutput", "ProposalBranch"]


class AFSDRefineOutput(NamedTuple):
    """The refinement head's outputs, in upstream's tuple order.

    ``start``, ``end`` ``[B, T_f, C/2]`` (frame-level halves), ``prop_loc [B, K, 2]`` (offsets in
    half coarse widths), ``prop_conf [B, K, num_classes]`` logits, ``center [B, K, 1]`` logits, and
    the level-0 boundary features ``start_loc_prop``, ``end_loc_prop``, ``start_conf_prop``,
    ``end_conf_prop`` ``[B, T_0, in_channels]``. ``K = sum T_l``.
    """

    start: torch.Tensor
    end: torch.Tensor
    prop_loc: torch.Tensor
    prop_conf: torch.Tensor
    center: torch.Tensor
    start_loc_prop: torch.Tensor
    end_loc_prop: torch.Tensor
    start_conf_prop: torch.Tensor
    end_conf_prop: torch.Tensor


def _conv_gn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """Kernel-1 :class:`Unit1D` -> GroupNorm -> ReLU."""
    return conv_gn_relu(Unit1D(in_channels, out_channels, kernel_shape=1, activation_fn=None), out_channels)


class ProposalBranch(nn.Module):
    """Proposal features from boundary max pooling on a pyramid level and the frame-level features.

    Args:
        in_channels: channels of the pyramid and frame-level features.
        proposal_channels: width of the branch (a multiple of 32).
    """

    def __init__(self, in_channels: int, proposal_channels: int) -> None:
        super().__init__()
        self.cur_point_conv = _conv_gn_relu(in_channels, proposal_channels)
        self.lr_conv = _conv_gn_relu(in_channels, proposal_channels * 2)
        self.boundary_max_pooling = BoundaryMaxPooling()
        self.roi_conv = _conv_gn_relu(proposal_channels, proposal_channels)
        self.proposal_conv = _conv_gn_relu(proposal_channels * 4, in_channels)

    def forward(
        self,
        feature: torch.Tensor,
        frame_level_feature: torch.Tensor,
        segments: torch.Tensor,
        frame_segments: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Proposal features ``[B, in_channels, T_l]`` and the boundary features ``[B, 2 * proposal_channels, T_l]``.

        Args:
            feature: ``[B, in_channels, T_l]`` pyramid level.
            frame_level_feature: ``[B, in_channels, T_f]``.
            segments: ``[B, T_l, 4]`` boundary regions on the level.
            frame_segments: ``[B, T_l, 4]`` boundary regions on the frame-level features.
        """
        short = self.cur_point_conv(feature)
        feature = self.lr_conv(feature)
        prop_feature = self.boundary_max_pooling(feature, segments)
        prop_roi_feature = self.roi_conv(self.boundary_max_pooling(frame_level_feature, frame_segments))
        prop_feature = self.proposal_conv(torch.cat([prop_roi_feature, prop_feature, short], dim=1))
        return prop_feature, feature


@ROI_HEADS.register_module()
class AFSDRefineHead(nn.Module):
    """AFSD refinement: per-location offsets, class logits and centerness from boundary features.

    Args:
        in_channels: channels of the pyramid and frame-level features, also
            the proposal branches' width (a multiple of 32). Upstream fixes
            the width at 512 and pools the frame-level features straight into
            a 512-channel convolution, so only ``in_channels=512`` runs there;
            here other widths (the small synthetic models) work too, and 512
            builds upstream's model.
        num_classes: classes, background included (AFSD uses softmax).
        overlap_thresh, loc_weight, loc_bounded, use_smooth_l1: loss settings
            the AFSD detector reads from its ``roi_head`` (kept here as attributes).

    Raises:
        ValueError: ``in_channels`` is not a positive multiple of 32 (GroupNorm with 32 groups).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        overlap_thresh: float = 0.6,
        loc_weight: float = 1.0,
        loc_bounded: bool = True,
        use_smooth_l1: bool = True,
    ) -> None:
        super().__init__()
        if in_channels <= 0 or in_channels % 32:
            raise ValueError(f"AFSDRefineHead: in_channels must be a positive multiple of 32, got {in_channels}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.overlap_thresh = overlap_thresh
        self.loc_weight = loc_weight
        self.loc_bounded = loc_bounded
        self.use_smooth_l1 = use_smooth_l1
        self.loc_proposal_branch = ProposalBranch(in_channels, in_channels)
        self.conf_proposal_branch = ProposalBranch(in_channels, in_channels)
        self.prop_loc_head = Unit1D(in_channels=in_channels, output_channels=2, kernel_shape=1, activation_fn=None)
        self.prop_conf_head = Unit1D(
            in_channels=in_channels, output_channels=num_classes, kernel_shape=1, activation_fn=None
        )
        self.center_head = Unit1D(
            in_channels=in_channels, output_channels=1, kernel_shape=3, stride=1, use_bias=True, activation_fn=None
        )
        self.init_weights()

    def init_weights(self) -> None:
        """Conv weights N(0, 0.01) with zero bias; GroupNorm to identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.GroupNorm):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward_train(
        self,
        frame_level_feat: torch.Tensor,
        loc_feats: Sequence[torch.Tensor],
        conf_feats: Sequence[torch.Tensor],
        segments_list: Sequence[torch.Tensor],
        frame_segments_list: Sequence[torch.Tensor],
        **kwargs,
    ) -> AFSDRefineOutput:
        """Refinement outputs, as upstream returns them.

        Args:
            frame_level_feat: ``[B, C, T_f]``.
            loc_feats, conf_feats: per level ``[B, C, T_l]``.
            segments_list, frame_segments_list: per level ``[B, T_l, 4]``.
            **kwargs: ignored (the detector passes its training arguments).

        Returns:
            :class:`AFSDRefineOutput` (a tuple in upstream's order).
        """
        half = self.in_channels // 2
        start = frame_level_feat[:, :half].permute(0, 2, 1).contiguous()
        end = frame_level_feat[:, half:].permute(0, 2, 1).contiguous()
        batch = frame_level_feat.size(0)
        locs: List[torch.Tensor] = []
        confs: List[torch.Tensor] = []
        centers: List[torch.Tensor] = []
        boundary = None
        levels = zip(loc_feats, conf_feats, segments_list, frame_segments_list)
        for i, (loc_feat, conf_feat, segments, frame_segments) in enumerate(levels):
            loc_prop, loc_boundary = self.loc_proposal_branch(loc_feat, frame_level_feat, segments, frame_segments)
            conf_prop, conf_boundary = self.conf_proposal_branch(conf_feat, frame_level_feat, segments, frame_segments)
            if i == 0:
                boundary = self._split_boundary(loc_boundary) + self._split_boundary(conf_boundary)
            locs.append(self.prop_loc_head(loc_prop).view(batch, 2, -1).permute(0, 2, 1).contiguous())
            confs.append(self.prop_conf_head(conf_prop).view(batch, self.num_classes, -1).permute(0, 2, 1).contiguous())
            centers.append(self.center_head(loc_prop).view(batch, 1, -1).permute(0, 2, 1).contiguous())
        prop_loc = torch.cat([o.view(batch, -1, 2) for o in locs], 1)
        prop_conf = torch.cat([o.view(batch, -1, self.num_classes) for o in confs], 1)
        center = torch.cat([o.view(batch, -1, 1) for o in centers], 1)
        return AFSDRefineOutput(start, end, prop_loc, prop_conf, center, *boundary)

    @staticmethod
    def _split_boundary(feature: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        half = feature.size(1) // 2
        return feature[:, :half].permute(0, 2, 1).contiguous(), feature[:, half:].permute(0, 2, 1).contiguous()

    def forward_test(self, frame_level_feat, loc_feats, conf_feats, segments_list, frame_segments_list, **kwargs):
        """Same as :meth:`forward_train`."""
        return self.forward_train(frame_level_feat, loc_feats, conf_feats, segments_list, frame_segments_list)
