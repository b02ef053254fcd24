"""ActionFormer's projection: conv embedding, transformer stem, downsampling branch."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.bricks.conv import ConvModule
from opentad.models.bricks.misc import sinusoid_encoding
from opentad.models.bricks.transformer import TransformerBlock
from opentad.models.utils.misc import apply_mask
from opentad.registry import PROJECTIONS, bind

__all__ = ["Conv1DTransformerProj", "ConvOptions", "AttnOptions"]

logger = logging.getLogger(__name__)


@dataclass
class ConvOptions:
    """``conv_cfg``: kernel size of the embedding convs, dropout of the attention / MLP projections."""

    kernel_size: int = 3
    proj_pdrop: float = 0.0


@dataclass
class AttnOptions:
    """``attn_cfg``: heads, and the attention window (one, or one per level; -1: global)."""

    n_head: int = 4
    n_mha_win_size: Union[int, Sequence[int]] = -1


@PROJECTIONS.register_module()
class Conv1DTransformerProj(nn.Module):
    """Features ``[B, C_in, T]`` -> pyramid of ``1 + arch[2]`` levels ``[B, C_out, T / 2^l]``.

    ``arch = (n_embed, n_stem, n_branch)``: ``n_embed`` masked convs, ``n_stem``
    transformer blocks at full rate, then ``n_branch`` blocks that each halve
    the length; the stem output and every branch output form the pyramid.

    Padded steps are zeroed on entry and stay zero in every output, so what a
    padded step holds never changes a valid output.

    Args:
        in_channels: input channels, or a list when the input concatenates
            several features (each gets its own 1x1 conv, ``proj.i``).
        out_channels: width ``C_out`` (a list, matching ``in_channels``, in the
            multi-feature case; the width is then their sum).
        arch: ``(n_embed, n_stem, n_branch)``.
        conv_cfg: ``kernel_size`` of the embedding convs (3) and ``proj_pdrop``,
            the dropout of attention/MLP projections (0.0).
        norm_cfg: norm of the embedding convs (e.g. ``dict(type="LN")``) or None.
        attn_cfg: ``n_head`` (4) and ``n_mha_win_size``: one window size or one
            per level (``1 + n_branch`` entries); -1 means global attention.
        path_pdrop: drop-path rate of the transformer blocks.
        use_abs_pe: add a sinusoidal position table after the embedding.
        max_seq_len: length of that table (training inputs must not be longer).
        input_pdrop: channel dropout on the input features.

    Raises:
        ValueError: bad ``arch``, window list length, option keys, or channel lists.
    """

    def __init__(
        self,
        *,
        in_channels: Union[int, Sequence[int]],
        out_channels: Union[int, Sequence[int]],
        arch: Sequence[int] = (2, 2, 5),
        conv_cfg: Optional[Mapping[str, Any]] = None,
        norm_cfg: Optional[Mapping[str, Any]] = None,
        attn_cfg: Optional[Mapping[str, Any]] = None,
        path_pdrop: float = 0.0,
        use_abs_pe: bool = False,
        max_seq_len: int = 2304,
        input_pdrop: float = 0.0,
    ):
        super().__init__()
        if len(arch) != 3:
            raise ValueError(f"Conv1DTransformerProj arch must be (n_embed, n_stem, n_branch), got {arch!r}")
        conv = bind(ConvOptions, conv_cfg, path="Conv1DTransformerProj.conv_cfg")
        attn = bind(AttnOptions, attn_cfg, path="Conv1DTransformerProj.attn_cfg")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.arch = tuple(arch)
        self.kernel_size = conv.kernel_size
        self.proj_pdrop = conv.proj_pdrop
        self.scale_factor = 2
        self.n_head = attn.n_head
        self.n_mha_win_size = attn.n_mha_win_size
        self.path_pdrop = path_pdrop
        self.use_abs_pe = use_abs_pe
        self.max_seq_len = max_seq_len
        self.mha_win_size = self._window_sizes(self.n_mha_win_size, 1 + self.arch[2])
        self.input_pdrop = nn.Dropout1d(p=input_pdrop) if input_pdrop > 0 else None

        self.proj, width_in, width = self._build_input_proj(in_channels, out_channels)
        if use_abs_pe:
            table = sinusoid_encoding(max_seq_len, width) / (width**0.5)
            self.register_buffer("pos_embed", table, persistent=False)
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
        block = dict(attn_pdrop=0.0, proj_pdrop=self.proj_pdrop, path_pdrop=path_pdrop)
        self.stem = nn.ModuleList(
            TransformerBlock(width, self.n_head, n_ds_strides=(1, 1), mha_win_size=self.mha_win_size[0], **block)
            for _ in range(self.arch[1])
        )
        strides = (self.scale_factor, self.scale_factor)
        self.branch = nn.ModuleList(
            TransformerBlock(width, self.n_head, n_ds_strides=strides, mha_win_size=self.mha_win_size[1 + i], **block)
            for i in range(self.arch[2])
        )
        self.apply(self._zero_bias)

    @staticmethod
    def _window_sizes(n_mha_win_size: Union[int, Sequence[int]], num_levels: int):
        if isinstance(n_mha_win_size, int):
            return [n_mha_win_size] * num_levels
        if len(n_mha_win_size) != num_levels:
            raise ValueError(
                f"attn_cfg.n_mha_win_size has {len(n_mha_win_size)} entries; expected one per level "
                f"(1 + arch[2] = {num_levels})"
            )
        return list(n_mha_win_size)

    @staticmethod
    def _build_input_proj(in_channels, out_channels):
        """1x1 convs per input feature when several are concatenated, else None."""
        if isinstance(in_channels, int):
            if not isinstance(out_channels, int):
                raise ValueError(f"out_channels must be an int when in_channels is, got {out_channels!r}")
            return None, in_channels, out_channels
        if isinstance(out_channels, int) or len(in_channels) != len(out_channels):
            raise ValueError(
                f"in_channels {list(in_channels)} and out_channels {out_channels!r} must be lists of one length"
            )
        proj = nn.ModuleList(ConvModule(c_in, c_out, kernel_size=1) for c_in, c_out in zip(in_channels, out_channels))
        return proj, sum(out_channels), sum(out_channels)

    @staticmethod
    def _zero_bias(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Conv1d)) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def _position_table(self, length: int) -> torch.Tensor:
        if self.training:
            if length > self.max_seq_len:
                raise ValueError(
                    f"Conv1DTransformerProj: training input of length {length} exceeds max_seq_len={self.max_seq_len}"
                )
            return self.pos_embed[:, :, :length]
        if length >= self.max_seq_len:  # longer test inputs: stretch the table
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
        x = apply_mask(x, mask)
        if self.proj is not None:
            parts = x.split(list(self.in_channels), dim=1)
            x = torch.cat([proj(part, mask)[0] for proj, part in zip(self.proj, parts)], dim=1)
        if self.input_pdrop is not None:
            x = self.input_pdrop(x)
        for conv in self.embed:
            x, mask = conv(x, mask)
        if self.use_abs_pe:
            x = x + apply_mask(self._position_table(x.shape[-1]).to(x.dtype), mask)
        for block in self.stem:
            x, mask = block(x, mask)
        feats, masks = [x], [mask]
        for block in self.branch:
            x, mask = block(x, mask)
            feats.append(x)
            masks.append(mask)
        return tuple(feats), tuple(masks)
