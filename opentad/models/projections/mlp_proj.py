"""Single-scale convolutional projection of the proposal-map detectors (BMN, GTAD, TSI, ETAD, TadTR)."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from opentad.models.bricks.conv import ConvModule
from opentad.registry import PROJECTIONS

__all__ = ["ConvSingleProj"]


@PROJECTIONS.register_module()
class ConvSingleProj(nn.Module):
    """``num_convs`` masked convolutions (kernel 3, padding 1) at the input's resolution.

    State-dict keys ``convs.{i}.conv.*`` (and ``convs.{i}.norm.*``) as upstream.

    Args:
        in_channels: input channels ``C``.
        out_channels: output channels.
        num_convs: number of :class:`ConvModule` blocks (>= 1).
        conv_cfg: extra ``nn.Conv1d`` arguments (``groups``, ``kernel_size``, ...).
        norm_cfg: normalisation of each block, or None.
        act_cfg: activation of each block (ReLU), or None.
        drop_out: channel dropout (``nn.Dropout1d``) on the input, or None.

    Raises:
        ValueError: ``num_convs < 1``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        num_convs: int,
        conv_cfg: Optional[Mapping[str, Any]] = None,
        norm_cfg: Optional[Mapping[str, Any]] = None,
        act_cfg: Optional[Mapping[str, Any]] = dict(type="relu"),
        drop_out: Optional[float] = None,
    ):
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"ConvSingleProj needs num_convs >= 1, got {num_convs}")
        self.drop_out = nn.Dropout1d(p=drop_out) if drop_out is not None else None
        self.convs = nn.ModuleList(
            ConvModule(
                in_channels if i == 0 else out_channels,
                out_channels,
                kernel_size=3,
                padding=1,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
            )
            for i in range(num_convs)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x [B, C, T]``, ``mask [B, T]`` -> ``([B, out_channels, T'], [B, T'])``."""
        if self.drop_out is not None:
            x = self.drop_out(x)
        for conv in self.convs:
            x, mask = conv(x, mask)
        return x, mask
