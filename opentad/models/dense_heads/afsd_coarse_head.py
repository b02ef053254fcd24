"""AFSD's coarse (first-stage) head (upstream ``AFSDCoarseHead``): anchor-free distances, class
logits and the boundary regions the refinement head pools from.

Module and parameter names follow upstream (``loc_tower``, ``conf_tower``, ``loc_head``,
``conf_head``, ``scales.{i}.scale``), so AFSD checkpoints load.
"""
from __future__ import annotations

from typing import List, NamedTuple, Sequence, Tuple

import torch
import torch.nn as nn

from opentad.models.bricks.misc import ScaleExp
from opentad.models.roi_heads.unit1d import Unit1D, conv_gn_relu
from opentad.registry import HEADS

__all__ = ["AFSDCoarseHead", "AFSDCoarseOutput", "boundary_regions"]


class AFSDCoarseOutput(NamedTuple):
    """What the coarse head gives the refinement head and the loss (upstream's tuple order).

    ``loc [B, K, 2]`` (distances to start / end in frames), ``conf [B, K, num_classes]`` logits,
    ``priors [K, 2]`` (normalised centre, level), per level ``loc_feats`` / ``conf_feats``
    ``[B, C, T_l]``, ``segments`` ``[B, T_l, 4]`` (boundary regions in level steps) and
    ``frame_segments`` ``[B, T_l, 4]`` (in frames). ``K = sum T_l``.
    """

    loc: torch.Tensor
    conf: torch.Tensor
    priors: torch.Tensor
    loc_feats: List[torch.Tensor]
    conf_feats: List[torch.Tensor]
    segments: List[torch.Tensor]
    frame_segments: List[torch.Tensor]


def boundary_regions(start: torch.Tensor, end: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Start and end regions ``[B, T, 4]`` = rounded (start - o, start + i, end - i, end + o).

    ``i = max(length / 4, 1)`` reaches inside the segment, ``o = max(length / 10, 1)`` outside.

    Args:
        start, end, length: ``[B, T, 1]``.
    """
    inner = torch.clamp(length / 4.0, min=1.0)
    outer = torch.clamp(length / 10.0, min=1.0)
    bounds = [start - outer, start + inner, end - inner, end + outer]
    return torch.cat([torch.round(b) for b in bounds], dim=-1)


@HEADS.register_module()
class AFSDCoarseHead(nn.Module):
    """Shared towers over the pyramid; per level ``exp(scale * x) * stride`` distances and class logits.

    Priors are the level cells' normalised centres ``(c + 0.5) / (feat_t // 2^l)``, so level ``l``
    must have ``feat_t // 2^l`` steps.

    Args:
        in_channels: channels of the pyramid.
        out_channels: width of the towers (a multiple of 32).
        frame_num: length of the frame-level feature (the frames the distances are measured in).
        fpn_strides: per level, the factor of the regressed distances.
        num_classes: classes, background (0) included.
        layer_num: pyramid levels.
        feat_t: length of level 0.

    Raises:
        ValueError: ``fpn_strides`` has fewer than ``layer_num`` entries.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        frame_num: int,
        fpn_strides: Sequence[int] = (4, 8, 16, 32, 64, 128),
        num_classes: int = 2,
        layer_num: int = 6,
        feat_t: int = 768 // 8,
    ):
        super().__init__()
        if len(fpn_strides) < layer_num:
            raise ValueError(f"AFSDCoarseHead: {len(fpn_strides)} fpn_strides for {layer_num} levels")
        self.frame_num = frame_num
        self.fpn_strides = list(fpn_strides)
        self.num_classes = num_classes
        self.feat_t = feat_t

        def tower() -> nn.Sequential:
            convs = [Unit1D(c, out_channels, 3, use_bias=True, activation_fn=None) for c in (in_channels, out_channels)]
            return nn.Sequential(*[conv_gn_relu(conv, out_channels) for conv in convs])

        self.loc_tower = tower()
        self.conf_tower = tower()
        self.priors = [self.level_priors(feat_t // 2**i, i) for i in range(layer_num)]  # not in the state dict
        self.loc_head = Unit1D(out_channels, 2, 3, use_bias=True, activation_fn=None)
        self.scales = nn.ModuleList([ScaleExp() for _ in range(layer_num)])
        self.conf_head = Unit1D(out_channels, num_classes, 3, use_bias=True, activation_fn=None)
        self.init_weights()

    @staticmethod
    def level_priors(length: int, level: int) -> torch.Tensor:
        """``[length, 2]``: ``((c + 0.5) / length, level)`` (computed in float64, stored in float32)."""
        centres = (torch.arange(length, dtype=torch.float64) + 0.5) / length
        return torch.stack([centres, torch.full_like(centres, level)], dim=1).float()

    def init_weights(self) -> None:
        """Convolutions N(0, 0.01) with zero bias, GroupNorms identity (upstream's init)."""
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.normal_(m.weight, mean=0, std=0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @torch.no_grad()
    def generate_segments(self, loc: torch.Tensor, level: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Boundary regions of each cell's coarse segment on the level and on the frames.

        Args:
            loc: ``[B, T_l, 2]`` distances in frames.
            level: the level index.

        Returns:
            ``segments [B, T_l, 4]`` in level steps and ``frame_segments [B, T_l, 4]`` in frames
            (see :func:`boundary_regions`).
        """
        length = loc.shape[1]
        steps = loc / self.frame_num * length
        priors = self.priors[level][:, :1].to(loc.device).expand(loc.size(0), length, 1)
        cells = torch.round(priors * length - 0.5)
        segments = boundary_regions(
            cells - steps[:, :, :1], cells + steps[:, :, 1:], steps[:, :, :1] + steps[:, :, 1:]
        )
        start = priors * self.frame_num - loc[:, :, :1]
        end = priors * self.frame_num + loc[:, :, 1:]
        return segments, boundary_regions(start, end, end - start + 1.0)

    def forward_train(self, pyramid_feats: Sequence[torch.Tensor], **kwargs) -> AFSDCoarseOutput:
        """Coarse predictions of every level (losses are the detector's: they need both stages).

        Args:
            pyramid_feats: levels ``[B, C, T_l]``, ``T_l = feat_t // 2^l``.
            **kwargs: ignored (upstream passes the training arguments).

        Raises:
            ValueError: a level's length differs from its priors'.
        """
        batch = pyramid_feats[0].size(0)
        locs, confs, loc_feats, conf_feats, segments, frame_segments = [], [], [], [], [], []
        for i, feat in enumerate(pyramid_feats):
            if feat.shape[-1] != self.priors[i].shape[0]:
                raise ValueError(
                    f"AFSDCoarseHead: level {i} has {feat.shape[-1]} steps but feat_t={self.feat_t} "
                    f"gives {self.priors[i].shape[0]} priors"
                )
            loc_feat, conf_feat = self.loc_tower(feat), self.conf_tower(feat)
            loc = self.scales[i](self.loc_head(loc_feat)).view(batch, 2, -1)
            loc = loc.permute(0, 2, 1).contiguous() * self.fpn_strides[i]
            conf = self.conf_head(conf_feat).view(batch, self.num_classes, -1).permute(0, 2, 1).contiguous()
            level_segments, level_frame_segments = self.generate_segments(loc, i)
            for out, value in zip(
                (locs, confs, loc_feats, conf_feats, segments, frame_segments),
                (loc, conf, loc_feat, conf_feat, level_segments, level_frame_segments),
            ):
                out.append(value)
        priors = torch.cat(self.priors[: len(pyramid_feats)], 0).to(locs[0].device)
        return AFSDCoarseOutput(
            torch.cat(locs, 1), torch.cat(confs, 1), priors, loc_feats, conf_feats, segments, frame_segments
        )

    def forward_test(self, pyramid_feats: Sequence[torch.Tensor], **kwargs) -> AFSDCoarseOutput:
        """Same as :meth:`forward_train`."""
        return self.forward_train(pyramid_feats)
