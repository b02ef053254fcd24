"""TriDet's projection: conv embedding, SGP stem, downsampling SGP branch."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.bricks.conv import ConvModule
from opentad.models.bricks.misc import sinusoid_encoding
from opentad.models.bricks.sgp import SGPBlock
from opentad.registry import PROJECTIONS, bind

__all__ = ["TriDetProj", "TriDetConvOptions"]

logger = logging.getLogger(__name__)


@dataclass
class TriDetConvOptions:
    """``conv_cfg`` of :class:`TriDetProj`: the kernel size of the embedding convs."""

    kernel_size: int = 3


@PROJECTIONS.register_module()
class TriDetProj(nn.Module):
    """Features ``[B, C_in, T]`` -> pyramid of ``1 + arch[2]`` levels ``[B, C_out, T / 2^l]``.

    ``arch = (n_embed, n_stem, n_branch)``: ``n_embed`` masked convs (ReLU),
    ``n_stem`` SGP blocks at full rate (kernel 1, no drop path), then
    ``n_branch`` SGP blocks that each halve the length (kernel
    ``sgp_win_size[1 + i]``, drop path ``path_pdrop``); the stem output and every
    branch output form the pyramid. Keys and arithmetic are upstream OpenTAD's
    (``opentad/models/projections/tridet_proj.py`` there).

    Args:
        in_channels: input channels.
        out_channels: width ``C_out`` (a multiple of 16: the blocks' GroupNorm).
        sgp_mlp_dim: hidden width of the SGP blocks' MLP.
        arch: ``(n_embed, n_stem, n_branch)``.
        sgp_win_size: one instant-level kernel per level (``1 + n_branch``
            entries; entry 0 is unused: the stem uses 1).
        downsample_type: ``"max"`` or ``"avg"`` (see :class:`SGPBlock`).
        k: granularity ratio of the SGP window-level branch.
        init_conv_vars: std of the normal init of the SGP convs.
        conv_cfg: ``kernel_size`` of the embedding convs (3).
        norm_cfg: norm of the embedding convs (e.g. ``dict(type="LN")``) or None.
        path_pdrop: drop-path rate of the branch blocks.
        use_abs_pe: add a sinusoidal position table (masked) after the embedding.
        max_seq_len: length of that table, and the length the detector pads to.
        input_noise: std of Gaussian noise added to the input in training.

    Raises:
        ValueError: ``arch`` is not three numbers or ``sgp_win_size`` has not ``1 + arch[2]`` entries.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        sgp_mlp_dim: int,
        arch: Sequence[int] = (2, 2, 5),
        sgp_win_size: Sequence[int] = (-1,) * 6,
        downsample_type: str = "max",
        k: float = 1.5,
        init_conv_vars: float = 1.0,
        conv_cfg: Optional[Mapping[str, Any]] = None,
        norm_cfg: Optional[Mapping[str, Any]] = None,
        path_pdrop: float = 0.0,
        use_abs_pe: bool = False,
        max_seq_len: int = 2304,
        input_noise: float = 0.0,
    ):
        super().__init__()
        if len(arch) != 3:
            raise ValueError(f"TriDetProj arch must be (n_embed, n_stem, n_branch), got {arch!r}")
        if len(sgp_win_size) != 1 + arch[2]:
            raise ValueError(
                f"TriDetProj sgp_win_size has {len(sgp_win_size)} entries; expected one per level (1 + arch[2] = "
                f"{1 + arch[2]})"
            )
        conv = bind(TriDetConvOptions, conv_cfg, path="TriDetProj.conv_cfg")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.arch = tuple(arch)
        self.kernel_size = conv.kernel_size
        self.scale_factor = 2
        self.path_pdrop = path_pdrop
        self.with_norm = norm_cfg is not None
        self.use_abs_pe = use_abs_pe
        self.max_seq_len = max_seq_len
        self.sgp_win_size = list(sgp_win_size)
        self.downsample_type = downsample_type
        self.input_noise = input_noise
        if use_abs_pe:
            table = sinusoid_encoding(max_seq_len, out_channels) / (out_channels**0.5)
            self.register_buffer("pos_embed", table, persistent=False)

        self.embed = nn.ModuleList(
            ConvModule(
                in_channels if i == 0 else out_channels,
                out_channels,
                kernel_size=self.kernel_size,
                padding=self.kernel_size // 2,
                norm_cfg=norm_cfg,
                act_cfg=dict(type="relu"),
            )
            for i in range(self.arch[0])
        )
        sgp = dict(n_hidden=sgp_mlp_dim, k=k, init_conv_vars=init_conv_vars)
        self.stem = nn.ModuleList(
            SGPBlock(out_channels, kernel_size=1, n_ds_stride=1, **sgp) for _ in range(self.arch[1])
        )
        self.branch = nn.ModuleList(
            SGPBlock(
                out_channels,
                kernel_size=self.sgp_win_size[1 + i],
                n_ds_stride=self.scale_factor,
                path_pdrop=path_pdrop,
                downsample_type=downsample_type,
                **sgp,
            )
            for i in range(self.arch[2])
        )

    def _position_table(self, length: int) -> torch.Tensor:
        """``[1, C, length]``: the table, stretched (linear) at inference when ``length >= max_seq_len``.

        Raises:
            ValueError: a training input longer than ``max_seq_len``.
        """
        if self.training and length > self.max_seq_len:
            raise ValueError(f"TriDetProj: training input of length {length} exceeds max_seq_len={self.max_seq_len}")
        if not self.training and length >= self.max_seq_len:
            return F.interpolate(self.pos_embed, length, mode="linear", align_corners=False)
        return self.pos_embed[:, :, :length]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[Tuple[torch.Tensor, ...], Tuple[torch.Tensor, ...]]:
        """Project.

        Args:
            x: ``[B, C_in, T]`` (``T`` a multiple of ``2^arch[2]``).
            mask: ``[B, T]`` bool.

        Returns:
            ``(feats, masks)``: tuples of ``1 + arch[2]`` tensors
            ``[B, C_out, T / 2^l]`` and ``[B, T / 2^l]``.
        """
        if self.training and self.input_noise > 0:
            x = x + torch.randn_like(x) * self.input_noise
        for conv in self.embed:
            x, mask = conv(x, mask)
        if self.use_abs_pe:
            x = x + self._position_table(x.shape[-1]).to(x.dtype) * mask[:, None].to(x.dtype)
        for block in self.stem:
            x, mask = block(x, mask)
        feats, masks = [x], [mask]
        for block in self.branch:
            x, mask = block(x, mask)
            feats.append(x)
            masks.append(mask)
        return tuple(feats), tuple(masks)
