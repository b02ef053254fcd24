"""G-TAD's sub-graph alignment (SGAlign): proposal-map features from RoI-aligned graph features."""
from __future__ import annotations

import torch
import torch.nn as nn

from opentad.models.bricks.gcnext import GCNeXt, knn, neighbour_features
from opentad.models.roi_heads.proposal_generator.dense_map import dense_proposal_map
from opentad.registry import ROI_HEADS

from .align1d import Align1DLayer

__all__ = ["GTADExtractor", "extended_anchors"]


def extended_anchors(tscale: int, dscale: int, extend_ratio: float) -> torch.Tensor:
    """The proposal map's segments, each widened by ``extend_ratio`` of its length on both sides.

    Cell ``(d, t)`` of :func:`dense_proposal_map` is ``[t, t + d + 1]``, widened
    to ``[t - (d + 1) r, t + d + 1 + (d + 1) r]``; cells that end after
    ``tscale`` stay ``[0, 0]`` (zero length). Computed in float64 and rounded
    once to float32, as upstream's Python floats.

    Returns:
        ``[dscale, tscale, 2]`` float32.
    """
    segments = dense_proposal_map(tscale, dscale)[0].double()
    widening = (segments[..., 1] - segments[..., 0]) * extend_ratio
    return torch.stack((segments[..., 0] - widening, segments[..., 1] + widening), dim=-1).float()


@ROI_HEADS.register_module()
class GTADExtractor(nn.Module):
    """A GCNeXt block, then for every cell of the ``[dscale, tscale]`` map the aligned features.

    Each (extended) segment is RoI-aligned (:class:`Align1DLayer`, upstream's
    float16/float64 rounding) twice: ``roi_size`` bins of the features, and
    ``context_size`` bins of their semantic context (the mean of each
    position's ``k`` nearest neighbours in feature space). The ``C * (roi_size
    + context_size)`` values of a cell go through a 1x1 ``Conv2d`` and a ReLU.

    State-dict keys are upstream's: ``gcnext.*`` and ``conv2d.0.*``; the
    anchors are not saved.

    Args:
        in_channels: ``C`` of the features.
        out_channels: channels of the proposal map.
        tscale: starts per map (the window length).
        dscale: durations per map.
        k: neighbours of the context (the GCNeXt block uses 3, as upstream).
        roi_size: bins of each segment's own features.
        context_size: bins of its context features.
        prop_extend_ratio: widening of each segment, as a share of its length per side.
    """

    def __init__(
        self,
        *,
        in_channels: int = 256,
        out_channels: int = 128,
        tscale: int = 128,
        dscale: int = 128,
        k: int = 3,
        roi_size: int = 32,
        context_size: int = 4,
        prop_extend_ratio: float = 0.5,
    ):
        super().__init__()
        self.k = k
        self.prop_extend_ratio = prop_extend_ratio
        self.gcnext = GCNeXt(in_channels=in_channels, out_channels=in_channels, k=3, groups=32)
        self.align_inner = Align1DLayer(roi_size, ratio=0)
        self.align_context = Align1DLayer(context_size)
        self.conv2d = nn.Sequential(
            nn.Conv2d(in_channels * (roi_size + context_size), out_channels, kernel_size=1),
            nn.ReLU(inplace=True),
        )
        self.register_buffer("anchors", extended_anchors(tscale, dscale, prop_extend_ratio), persistent=False)

    def rois(self, batch_size: int) -> torch.Tensor:
        """``[B * dscale * tscale, 3]`` rois ``(batch index, start, end)``, batch-major."""
        anchors = self.anchors.reshape(1, -1, 2).expand(batch_size, -1, -1)
        index = torch.arange(batch_size, dtype=anchors.dtype, device=anchors.device)
        index = index.view(-1, 1, 1).expand(-1, anchors.shape[1], 1)
        return torch.cat((index, anchors), dim=2).reshape(-1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Proposal-map features.

        Args:
            x: ``[B, C, T]`` features, ``T = tscale``.

        Returns:
            ``[B, out_channels, dscale, tscale]``.

        Raises:
            ValueError: ``T`` differs from ``tscale``.
        """
        dscale, tscale = self.anchors.shape[:2]
        if x.shape[-1] != tscale:
            raise ValueError(f"GTADExtractor: features have {x.shape[-1]} positions, the map {tscale}")
        batch_size = x.shape[0]
        x = self.gcnext(x)
        rois = self.rois(batch_size).to(x.dtype)
        inner = self.align_inner(x, rois)  # [B * D * T, C, roi_size]
        context = neighbour_features(x, knn(x, self.k)).mean(dim=-1)  # [B, C, T]
        context = self.align_context(context, rois)  # [B * D * T, C, context_size]
        feat = torch.cat((inner, context), dim=2).view(batch_size, dscale, tscale, -1)
        return self.conv2d(feat.permute(0, 3, 1, 2).contiguous())
