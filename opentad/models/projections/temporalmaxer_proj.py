"""TemporalMaxer's projection: conv embedding, then a max-pooling pyramid."""
from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from opentad.models.bricks.conv import ConvModule
from opentad.models.bricks.temporal_maxer import TemporalMaxerBlock
from opentad.models.projections.actionformer_proj import Conv1DTransformerProj, ConvOptions
from opentad.registry import PROJECTIONS, bind

__all__ = ["TemporalMaxerProj"]

logger = logging.getLogger(__name__)


@PROJECTIONS.register_module()
class TemporalMaxerProj(nn.Module):
    """Features ``[B, C_in, T]`` -> pyramid of ``1 + arch[2]`` levels ``[B, C_out, ceil(T / 2^l)]``.

    ``arch = (n_embed, n_stem, n_branch)``: ``n_embed`` masked conv + norm + ReLU
    layers, then ``n_branch`` parameter-free :class:`TemporalMaxerBlock` (kernel 3,
    stride 2, padding 1); the embedding output and every block output form the
    pyramid. ``n_stem`` is not used (upstream's configs set 0; another value is
    ignored with a warning, as upstream ignores it).

    As upstream, the input is not masked on entry: padded steps should hold
    zeros (the padding transforms write zeros).

    Args:
        in_channels: input channels, or a list when the input concatenates
            several features (each gets its own 1x1 conv, ``proj.i``).
        out_channels: width ``C_out`` (a list matching ``in_channels`` in the
            multi-feature case; the width is then their sum).
        arch: ``(n_embed, n_stem, n_branch)``.
        conv_cfg: ``kernel_size`` of the embedding convs (3); ``proj_pdrop`` is accepted and unused.
        norm_cfg: norm of the embedding convs (e.g. ``dict(type="LN")``) or None.
        drop_out: channel dropout (``nn.Dropout1d``) on the input features.

    Raises:
        ValueError: ``arch`` is not three numbers; channel lists of different lengths.
    """

    def __init__(
        self,
        *,
        in_channels: Union[int, Sequence[int]],
        out_channels: Union[int, Sequence[int]],
        arch: Sequence[int] = (2, 0, 5),
        conv_cfg: Optional[Mapping[str, Any]] = None,
        norm_cfg: Optional[Mapping[str, Any]] = None,
        drop_out: float = 0.0,
    ):
        super().__init__()
        if len(arch) != 3:
            raise ValueError(f"TemporalMaxerProj arch must be (n_embed, n_stem, n_branch), got {arch!r}")
        if arch[1] != 0:
            logger.warning("TemporalMaxerProj ignores arch[1] (stem blocks) = %d, as upstream does", arch[1])
        conv = bind(ConvOptions, conv_cfg, path="TemporalMaxerProj.conv_cfg")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.arch = tuple(arch)
        self.kernel_size = conv.kernel_size
        self.scale_factor = 2
        self.with_norm = norm_cfg is not None
        self.drop_out = nn.Dropout1d(p=drop_out) if drop_out > 0 else None

        self.proj, width_in, width = Conv1DTransformerProj._build_input_proj(in_channels, out_channels)
        self.embed = nn.ModuleList(
            ConvModule(
                width_in if i == 0 else width,
                width,
                kernel_size=self.kernel_size,
                padding=self.kernel_size // 2,
                norm_cfg=norm_cfg,
                act_cfg=dict(type="relu"),
            )
            for i in range(self.arch[0])
        )
        self.branch = nn.ModuleList(
            TemporalMaxerBlock(kernel_size=3, stride=self.scale_factor, padding=1) for _ in range(self.arch[2])
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[Tuple[torch.Tensor, ...], Tuple[torch.Tensor, ...]]:
        """Project.

        Args:
            x: ``[B, C_in, T]``.
            mask: ``[B, T]`` bool.

        Returns:
            ``(feats, masks)``: tuples of ``1 + arch[2]`` tensors ``[B, C_out, T_l]``
            and ``[B, T_l]``, ``T_0 = T`` and ``T_{l+1} = ceil(T_l / 2)``.
        """
        if self.drop_out is not None:
            x = self.drop_out(x)
        if self.proj is not None:
            parts = x.split(list(self.in_channels), dim=1)
            x = torch.cat([proj(part, mask)[0] for proj, part in zip(self.proj, parts)], dim=1)
        for conv in self.embed:
            x, mask = conv(x, mask)
        feats, masks = [x], [mask]
        for block in self.branch:
            x, mask = block(x, mask)
            feats.append(x)
            masks.append(mask)
        return tuple(feats), tuple(masks)
