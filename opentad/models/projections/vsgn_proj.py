"""VSGN's encoder pyramid (Zhao et al., ICCV 2021): a stem conv and one downsampling block per level."""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from opentad.models.bricks.conv import ConvModule
from opentad.models.bricks.gcn import xGN
from opentad.registry import PROJECTIONS

__all__ = ["VSGNPyramidProj"]

_RELU = MappingProxyType({"type": "relu"})
_GCN = MappingProxyType(dict(num_neigh=10, nfeat_mode="feat_ctr", agg_type="max", edge_weight="false"))


@PROJECTIONS.register_module()
class VSGNPyramidProj(nn.Module):
    """``stem_convs`` (stride ``pyramid_levels[0] // 2``) then ``len(pyramid_levels)`` downsampling blocks.

    Each block (``pyramid_convs.i``) is a masked ``ConvModule`` (kernel 3, ReLU)
    or, with ``use_gcn``, an :class:`xGN` graph block; each divides the length
    by ``pyramid_levels[1] // pyramid_levels[0]``. Level ``i`` therefore has
    stride ``pyramid_levels[i]`` relative to the input.

    Args:
        in_channels: input feature channels.
        out_channels: width of every level.
        pyramid_levels: the strides of the levels (``[2, 4, 8, 16, 32]``).
        conv_cfg, norm_cfg: extra options of the convs (:class:`ConvModule`).
        use_gcn: xGN blocks instead of convs.
        gcn_kwargs: the :class:`xGN` graph options.

    Raises:
        ValueError: fewer than two levels, or a first level below 2.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        pyramid_levels: Sequence[int] = (2, 4, 8, 16, 32),
        conv_cfg: Optional[Mapping[str, Any]] = None,
        norm_cfg: Optional[Mapping[str, Any]] = None,
        use_gcn: bool = False,
        gcn_kwargs: Mapping[str, Any] = _GCN,
    ):
        super().__init__()
        if len(pyramid_levels) < 2 or pyramid_levels[0] < 2:
            raise ValueError(f"VSGNPyramidProj: pyramid_levels needs two levels or more, the first >= 2; got "
                             f"{list(pyramid_levels)}")
        convs = dict(kernel_size=3, padding=1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=_RELU)
        self.stem_convs = ConvModule(in_channels, out_channels, stride=pyramid_levels[0] // 2, **convs)
        scale_factor = pyramid_levels[1] // pyramid_levels[0]
        self.pyramid_convs = nn.ModuleList(
            xGN(out_channels, stride=scale_factor, gcn_kwargs=gcn_kwargs)
            if use_gcn
            else ConvModule(out_channels, out_channels, stride=scale_factor, **convs)
            for _ in pyramid_levels
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """``(x [B, C_in, T], mask [B, T])`` -> the levels ``[B, C, T / s_i]`` and their masks ``[B, T / s_i]``."""
        x, mask = self.stem_convs(x, mask)
        feats, masks = [], []
        for block in self.pyramid_convs:
            x, mask = block(x, mask)
            feats.append(x)
            masks.append(mask)
        return feats, masks
