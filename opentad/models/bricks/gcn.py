"""VSGN's cross-scale graph block: a temporal conv plus a graph conv over feature-space neighbours.

* :func:`knn_indices`: the ``k`` nearest time steps of each step, by squared Euclidean distance of features;
* :class:`NeighConv`: an edge MLP over (neighbour, centre) pairs, aggregated by max or mean (EdgeConv);
* :class:`xGN`: ``relu(conv3(x) + NeighConv(x))`` then masked max-pool downsampling.

State-dict keys are upstream OpenTAD's (``tconv1.*``, ``nconv1.mlp.*``).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from opentad.models.bricks.temporal_maxer import TemporalMaxerBlock

__all__ = ["knn_indices", "NeighConv", "xGN"]

NFEAT_MODES = ("feat_ctr", "dif_ctr")
AGG_TYPES = ("max", "mean")
EDGE_WEIGHTS = ("true", "false")


def knn_indices(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` nearest time steps of every step (itself included), nearest first.

    The distance is the sum over channels of squared differences, computed as
    differences (not through ``|a|^2 + |b|^2 - 2ab``) so that ties and
    rounding are upstream's.

    Args:
        x: ``[B, C, T]`` features.
        k: neighbours per step (at most ``T``).

    Returns:
        ``[B, T, k]`` long: row ``i`` holds the steps ``j`` with the smallest ``|x_j - x_i|^2``.

    Raises:
        ValueError: ``k`` larger than ``T``.
    """
    if k > x.shape[-1]:
        raise ValueError(f"knn_indices: {k} neighbours requested from a sequence of {x.shape[-1]} steps")
    dist = (x.unsqueeze(2) - x.unsqueeze(3)).square().sum(dim=1)  # [B, T_i, T_j]
    return dist.topk(k=k, dim=-1, largest=False)[1]


class NeighConv(nn.Module):
    """Graph convolution over each step's ``num_neigh`` feature-space neighbours.

    Each edge (neighbour ``j``, centre ``i``) gets the feature ``[x_j, x_i]``
    (``feat_ctr``) or ``[x_j - x_i, x_i]`` (``dif_ctr``), a shared
    ``Linear(2C, C)`` (``mlp``), optionally a weight (the cosine similarity of
    ``x_j`` and ``x_i``, ``edge_weight="true"``), and the edges of a centre are
    aggregated by ``max`` or ``mean``.

    Args:
        feat_channels: ``C``.
        num_neigh: neighbours per step (the step itself included).
        nfeat_mode: ``"feat_ctr"`` or ``"dif_ctr"``.
        agg_type: ``"max"`` or ``"mean"``.
        edge_weight: ``"true"`` or ``"false"`` (upstream's strings).

    Raises:
        ValueError: an option outside the values above.
    """

    def __init__(
        self,
        feat_channels: int,
        *,
        num_neigh: int = 10,
        nfeat_mode: str = "feat_ctr",
        agg_type: str = "max",
        edge_weight: str = "false",
    ):
        super().__init__()
        for name, value, valid in (
            ("nfeat_mode", nfeat_mode, NFEAT_MODES),
            ("agg_type", agg_type, AGG_TYPES),
            ("edge_weight", edge_weight, EDGE_WEIGHTS),
        ):
            if value not in valid:
                raise ValueError(f"NeighConv: {name}={value!r} is not one of {list(valid)}")
        self.num_neigh = num_neigh
        self.nfeat_mode = nfeat_mode
        self.agg_type = agg_type
        self.edge_weight = edge_weight
        self.mlp = nn.Linear(feat_channels * 2, feat_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` -> ``[B, C, T]``: the aggregated edge features of every step."""
        idx = knn_indices(x, self.num_neigh)  # [B, T, k]
        centre = x.transpose(1, 2)  # [B, T, C]
        batch = torch.arange(x.shape[0], device=x.device)[:, None, None]
        neigh = centre[batch, idx]  # [B, T, k, C]
        centre_k = centre.unsqueeze(2).expand_as(neigh)
        first = neigh if self.nfeat_mode == "feat_ctr" else neigh - centre_k
        out = self.mlp(torch.cat((first, centre_k), dim=-1))  # [B, T, k, C]
        if self.edge_weight == "true":
            dot = (neigh * centre_k).sum(-1, keepdim=True)
            norms = neigh.square().sum(-1, keepdim=True).sqrt() * centre_k.square().sum(-1, keepdim=True).sqrt()
            out = out * (dot / norms)
        out = out.max(dim=2)[0] if self.agg_type == "max" else out.mean(dim=2)
        return out.transpose(1, 2)


class xGN(nn.Module):  # noqa: N801 - upstream's name
    """VSGN's cross-scale graph network block (xGN): ``maxpool(relu(tconv1(x) + nconv1(x)))`` with its mask.

    Args:
        feat_channels: ``C`` (input and output).
        stride: downsampling of the max pooling (kernel 3, padding 1), at least 2.
        gcn_kwargs: the :class:`NeighConv` options (``num_neigh``, ``nfeat_mode``, ``agg_type``, ``edge_weight``).

    Raises:
        ValueError: ``stride < 2`` (the mask is pooled like :class:`TemporalMaxerBlock`'s, which keeps it at
            stride 1), or a bad ``gcn_kwargs`` entry.
    """

    def __init__(self, feat_channels: int, *, stride: int = 2, gcn_kwargs: Optional[Mapping[str, Any]] = None):
        super().__init__()
        if stride < 2:
            raise ValueError(f"xGN: stride must be at least 2, got {stride}")
        self.tconv1 = nn.Conv1d(feat_channels, feat_channels, kernel_size=3, stride=1, padding=1)
        self.nconv1 = NeighConv(feat_channels, **dict(gcn_kwargs or {}))
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = TemporalMaxerBlock(kernel_size=3, stride=stride, padding=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(x [B, C, T], mask [B, T])`` -> ``(x [B, C, T'], mask [B, T'])``, ``T' = ceil(T / stride)``."""
        out = self.relu(self.tconv1(x) + self.nconv1(x))
        return self.maxpool(out, mask)
