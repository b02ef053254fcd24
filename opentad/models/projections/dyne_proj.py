"""DyFADet's projection: conv embedding, then dynamic encoder layers (stem at full rate, downsampling branch)."""
from __future__ import annotations

import logging
from typing import Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.bricks.conv import ConvModule
from opentad.models.bricks.dyne_layer import DynELayer
from opentad.models.bricks.misc import sinusoid_encoding
from opentad.registry import PROJECTIONS

__all__ = ["DynEProj"]

logger = logging.getLogger(__name__)


@PROJECTIONS.register_module()
class DynEProj(nn.Module):
    """Features ``[B, C_in, T]`` -> pyramid of ``1 + arch[2]`` levels ``[B, C_out, ceil(T / 2^l)]``.

    ``arch = (n_embed, n_stem, n_branch)``: ``n_embed`` masked conv+LN+ReLU layers (kernel 3),
    ``n_stem`` :class:`DynELayer` at full rate (kernel 1, no drop path), then ``n_branch``
    layers that each halve the length (kernel ``encoder_win_size``, drop path ``path_pdrop``);
    the stem output and every branch output form the pyramid. Every bias of a conv starts at 0.

    As upstream, the input is not masked on entry (training noise reaches padded steps too)
    and the encoder layers do not zero padded steps (see :class:`DynELayer`).

    Args:
        in_channels: input channels, or a list when the input concatenates several features
            (each gets its own 1x1 conv, ``proj.i``).
        out_channels: width ``C_out`` (a list matching ``in_channels`` in the multi-feature
            case; the width is then their sum).
        arch: ``(n_embed, n_stem, n_branch)``.
        use_abs_pe: add a sinusoidal position table (masked) after the embedding.
        max_seq_len: length of that table (training inputs must not be longer).
        mlp_dim: MLP width of the encoder layers.
        encoder_win_size: odd kernel of the branch layers' ``psi`` / ``convw``.
        k: kernel expansion of the wide branch (``convkw``).
        init_conv_vars: init std of the encoder layers' dynamic convs (0: they stay 0).
        path_pdrop: drop-path rate of the branch layers.
        input_noise: std of Gaussian noise added to the input in training.

    Raises:
        ValueError: bad ``arch`` or channel lists; (forward) a training input longer than
            ``max_seq_len`` with ``use_abs_pe``.
    """

    def __init__(
        self,
        *,
        in_channels: Union[int, Sequence[int]],
        out_channels: Union[int, Sequence[int]],
        arch: Sequence[int] = (2, 2, 5),
        use_abs_pe: bool = False,
        max_seq_len: int = 2304,
        mlp_dim: int = 512,
        encoder_win_size: int = 1,
        k: float = 1.5,
        init_conv_vars: float = 1.0,
        path_pdrop: float = 0.0,
        input_noise: float = 0.0,
    ):
        super().__init__()
        if len(arch) != 3:
            raise ValueError(f"DynEProj arch must be (n_embed, n_stem, n_branch), got {arch!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.arch = tuple(arch)
        self.use_abs_pe = use_abs_pe
        self.max_seq_len = max_seq_len
        self.input_noise = input_noise

        self.proj, width_in, width = self._build_input_proj(in_channels, out_channels)
        if use_abs_pe:
            table = sinusoid_encoding(max_seq_len, width) / (width**0.5)
            self.register_buffer("pos_embed", table, persistent=False)
        self.embed = nn.ModuleList(
            ConvModule(
                width_in if i == 0 else width,
                width,
                kernel_size=3,
                padding=1,
                norm_cfg=dict(type="LN"),
                act_cfg=dict(type="relu"),
            )
            for i in range(self.arch[0])
        )
        layer = dict(n_hidden=mlp_dim, k=k, init_conv_vars=init_conv_vars)
        self.stem = nn.ModuleList(DynELayer(width, kernel_size=1, n_ds_stride=1, **layer) for _ in range(self.arch[1]))
        self.branch = nn.ModuleList(
            DynELayer(width, kernel_size=encoder_win_size, n_ds_stride=2, path_pdrop=path_pdrop, **layer)
            for _ in range(self.arch[2])
        )
        self.apply(self._zero_bias)

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
                raise ValueError(f"DynEProj: training input of length {length} exceeds max_seq_len={self.max_seq_len}")
            return self.pos_embed[:, :, :length]
        if length >= self.max_seq_len:  # longer test inputs: stretch the table
            return F.interpolate(self.pos_embed, length, mode="linear", align_corners=False)
        return self.pos_embed[:, :, :length]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[Tuple[torch.Tensor, ...], Tuple[torch.Tensor, ...]]:
        """Project.

        Args:
            x: ``[B, C_in, T]``.
            mask: ``[B, T]`` bool.

        Returns:
            ``(feats, masks)``: tuples of ``1 + arch[2]`` tensors ``[B, C_out, T_l]`` and ``[B, T_l]``.
        """
        if self.training and self.input_noise > 0:
            x = x + torch.randn_like(x) * self.input_noise
        if self.proj is not None:
            parts = x.split(list(self.in_channels), dim=1)
            x = torch.cat([proj(part, mask)[0] for proj, part in zip(self.proj, parts)], dim=1)
        for conv in self.embed:
            x, mask = conv(x, mask)
        if self.use_abs_pe:
            x = x + self._position_table(x.shape[-1]).to(x.dtype) * mask[:, None].to(x.dtype)
        for layer in self.stem:
            x, mask = layer(x, mask)
        feats, masks = [x], [mask]
        for layer in self.branch:
            x, mask = layer(x, mask)
            feats.append(x)
            masks.append(mask)
        return tuple(feats), tuple(masks)
