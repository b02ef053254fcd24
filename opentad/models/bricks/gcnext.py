"""GCNeXt, G-TAD's graph convolution block (Xu et al., CVPR 2020), and its k-nearest-neighbour graph.

Each snippet is a node with two kinds of edges: its temporal neighbours (a
grouped 1D convolution, the ``tconvs`` branch) and its ``k`` nearest snippets
in feature space (an edge convolution over ``[neighbour, node]`` pairs, max
over the neighbours, the ``sconvs`` branch). Both are added to the input
(residual) and passed through a ReLU.

Registered in ``NECKS`` under upstream's name: G-TAD's config uses it as the
neck; the TEM head and the GTAD extractor build it directly.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn as nn

from opentad.registry import NECKS

__all__ = ["GCNeXt", "knn", "neighbour_features"]

#: channels per group of the bottleneck (upstream's ``width_group``)
WIDTH_PER_GROUP = 4


def knn(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` nearest positions of every position, by squared Euclidean distance.

    The distance is upstream's ``2 x_i.x_j - |x_j|^2 - |x_i|^2`` (negated) in
    the same floating-point operations, so ``topk`` picks the same neighbours
    in the same order (the position itself first, up to rounding).

    Args:
        x: ``[B, C, T]`` features.
        k: neighbours per position.

    Returns:
        ``[B, T, k]`` long indices into ``T``, nearest first.

    Raises:
        ValueError: ``k`` exceeds ``T``.
    """
    if k > x.shape[-1]:
        raise ValueError(f"knn: k={k} neighbours requested among {x.shape[-1]} positions")
    squared = (x * x).sum(dim=1, keepdim=True)  # [B, 1, T]
    inner = 2 * torch.matmul(x.transpose(1, 2), x)  # [B, T, T]
    neg_distance = inner - squared - squared.transpose(1, 2)
    return neg_distance.topk(k=k, dim=-1).indices


def neighbour_features(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Gather the features of each position's neighbours.

    Args:
        x: ``[B, C, T]``.
        idx: ``[B, T, k]`` indices into ``T`` (from :func:`knn`).

    Returns:
        ``[B, C, T, k]``: ``out[b, :, t, j] = x[b, :, idx[b, t, j]]``.
    """
    rows = x.transpose(1, 2)  # [B, T, C]
    batch = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1)
    return rows[batch, idx].permute(0, 3, 1, 2).contiguous()  # contiguous as upstream: same reduction order


@NECKS.register_module()
class GCNeXt(nn.Module):
    """Temporal and semantic graph convolutions with a residual connection.

    State-dict keys are upstream's: ``tconvs.{0,2,4}.*`` (1x1, grouped k=3,
    1x1 ``Conv1d``) and ``sconvs.{0,2,4}.*`` (1x1, grouped 1x1, 1x1 ``Conv2d``
    over ``[B, 2C, T, k]`` edge features).

    Args:
        in_channels: ``C`` of the input.
        out_channels: ``C`` of the output; equal to ``in_channels`` (residual).
        k: neighbours in feature space.
        groups: groups of the bottleneck convolutions (width ``4 * groups``).

    Raises:
        ValueError: ``in_channels != out_channels``.
    """

    def __init__(self, *, in_channels: int, out_channels: int, k: int = 3, groups: int = 32):
        super().__init__()
        if in_channels != out_channels:
            raise ValueError(f"GCNeXt: the residual needs in_channels == out_channels, got {in_channels}, {out_channels}")
        self.k = k
        self.groups = groups
        width = WIDTH_PER_GROUP * groups
        self.tconvs = nn.Sequential(
            nn.Conv1d(in_channels, width, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv1d(width, width, kernel_size=3, groups=groups, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv1d(width, out_channels, kernel_size=1),
        )
        self.sconvs = nn.Sequential(
            nn.Conv2d(2 * in_channels, width, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, kernel_size=1, groups=groups),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, out_channels, kernel_size=1),
        )

    def forward(
        self, x: torch.Tensor, masks: Optional[torch.Tensor] = None
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """``relu(x + tconvs(x) + max_k sconvs([x_neighbour, x]))``.

        Args:
            x: ``[B, C, T]``.
            masks: ``[B, T]`` bool, or None.

        Returns:
            ``[B, C, T]`` without masks (as a brick); with masks (as a neck)
            ``(out * masks, masks)``.
        """
        neighbours = neighbour_features(x, knn(x, self.k))  # [B, C, T, k]
        edges = torch.cat((neighbours, x.unsqueeze(-1).expand_as(neighbours)), dim=1)
        semantic = self.sconvs(edges).amax(dim=-1)
        out = torch.relu(self.tconvs(x) + x + semantic)
        if masks is None:
            return out
        return out * masks.unsqueeze(1).to(out.dtype), masks

    def extra_repr(self) -> str:
        return f"k={self.k}, groups={self.groups}"
