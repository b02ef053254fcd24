"""VideoMambaSuite's projection (``MambaProj``) and the pyramid frame it shares with ``CausalProj``."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.bricks.conv import ConvModule
from opentad.models.bricks.mamba import DBM, ViM
from opentad.models.bricks.misc import AffineDropPath, sinusoid_encoding
from opentad.models.projections.actionformer_proj import Conv1DTransformerProj
from opentad.registry import PROJECTIONS, bind

__all__ = ["SSMPyramidProj", "MambaProj", "MaskMambaBlock", "MambaOptions", "masked_max_pool"]

logger = logging.getLogger(__name__)

Pyramid = Tuple[Tuple[torch.Tensor, ...], Tuple[torch.Tensor, ...]]


@dataclass
class EmbedConvOptions:
    """``conv_cfg`` of the state-space projections: kernel size of the embedding convs."""

    kernel_size: int = 3


@dataclass
class MambaOptions:
    """``mamba_cfg`` of ``MambaProj``: causal conv kernel, drop-path rate, mixer ("dbm" or "vim")."""

    kernel_size: int = 4
    drop_path_rate: float = 0.3
    use_mamba_type: str = "dbm"


def masked_max_pool(x: torch.Tensor, mask: torch.Tensor, pool: nn.MaxPool1d) -> Tuple[torch.Tensor, torch.Tensor]:
    """Max-pool ``x [B, C, T]`` and ``mask [B, T]`` alike (a step is valid if any pooled step is), then mask ``x``."""
    out_mask = pool(mask[:, None].float())[:, 0].bool()
    return pool(x) * out_mask[:, None].to(x.dtype), out_mask


class SSMPyramidProj(nn.Module):
    """Conv embedding, ``arch[1]`` stem blocks, ``arch[2]`` blocks that halve the length; a pyramid.

    The frame of upstream's ``MambaProj`` and ``CausalProj``: optional 1x1
    convs per concatenated input feature (``proj.i``), channel dropout,
    ``arch[0]`` masked conv+norm+ReLU layers (``embed.i``), an optional
    sinusoidal position table (masked), then ``stem.i`` and ``branch.i`` from
    the injected ``block`` factory. The stem output and every branch output
    form the pyramid. Linear/conv biases start at zero except those marked
    ``_no_reinit`` (Mamba's ``dt_proj.bias``), as upstream.

    Args:
        in_channels: input channels, or one per concatenated feature.
        out_channels: width (or one per feature, summed).
        arch: ``(n_embed, n_stem, n_branch)``.
        conv_cfg: ``kernel_size`` of the embedding convs.
        norm_cfg: norm of the embedding convs (e.g. ``dict(type="LN")``) or None.
        use_abs_pe: add the position table after the embedding.
        max_seq_len: length of that table.
        input_pdrop: channel dropout on the input.
        block: ``(width, stride) -> module`` with ``forward(x [B, C, T], mask [B, T]) -> (x, mask)``.

    Raises:
        ValueError: ``arch`` is not three numbers, or channel lists disagree.
    """

    def __init__(
        self,
        *,
        in_channels: Union[int, Sequence[int]],
        out_channels: Union[int, Sequence[int]],
        arch: Sequence[int],
        conv_cfg: Optional[Mapping[str, Any]],
        norm_cfg: Optional[Mapping[str, Any]],
        use_abs_pe: bool,
        max_seq_len: int,
        input_pdrop: float,
        block: Callable[[int, int], nn.Module],
    ):
        super().__init__()
        if len(arch) != 3:
            raise ValueError(f"{type(self).__name__} arch must be (n_embed, n_stem, n_branch), got {arch!r}")
        conv = bind(EmbedConvOptions, conv_cfg, path=f"{type(self).__name__}.conv_cfg")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.arch = tuple(arch)
        self.kernel_size = conv.kernel_size
        self.scale_factor = 2
        self.use_abs_pe = use_abs_pe
        self.max_seq_len = max_seq_len
        self.input_pdrop = nn.Dropout1d(p=input_pdrop) if input_pdrop > 0 else None
        self.proj, width_in, width = Conv1DTransformerProj._build_input_proj(in_channels, out_channels)
        if use_abs_pe:
            self.register_buffer("pos_embed", sinusoid_encoding(max_seq_len, width) / (width**0.5), persistent=False)
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
        self.stem = nn.ModuleList(block(width, 1) for _ in range(self.arch[1]))
        self.branch = nn.ModuleList(block(width, 2) for _ in range(self.arch[2]))
        self.apply(self._zero_bias)

    @staticmethod
    def _zero_bias(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Conv1d)) and module.bias is not None:
            if not getattr(module.bias, "_no_reinit", False):
                nn.init.zeros_(module.bias)

    def _position_table(self, length: int) -> torch.Tensor:
        if self.training:
            if length > self.max_seq_len:
                raise ValueError(f"{type(self).__name__}: training length {length} exceeds max_seq_len={self.max_seq_len}")
            return self.pos_embed[:, :, :length]
        if length >= self.max_seq_len:  # longer test inputs: stretch the table
            return F.interpolate(self.pos_embed, length, mode="linear", align_corners=False)
        return self.pos_embed[:, :, :length]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Pyramid:
        """Project.

        Args:
            x: ``[B, C_in, T]`` (any ``T``; each branch level has ``ceil(T_prev / 2)`` steps).
            mask: ``[B, T]`` bool.

        Returns:
            ``(feats, masks)``: ``1 + arch[2]`` tensors ``[B, C_out, T_l]`` and masks ``[B, T_l]``.
        """
        if self.proj is not None:
            parts = x.split(list(self.in_channels), dim=1)
            x = torch.cat([proj(part, mask)[0] for proj, part in zip(self.proj, parts)], dim=1)
        if self.input_pdrop is not None:
            x = self.input_pdrop(x)
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


class MaskMambaBlock(nn.Module):
    """``x + drop_path(mask * mixer(LN(x)))``, then an optional masked max-pool (kernel 3, stride 2).

    Args:
        n_embd: channels ``C``.
        kernel_size: causal conv kernel of the mixer.
        n_ds_stride: 1, or 2 to halve the length.
        drop_path_rate: > 0 adds a per-channel scale (``drop_path.scale``) with drop path.
        use_mamba_type: "dbm" (:class:`DBM`, ``expand=1``) or "vim" (:class:`ViM`, ``expand=2``).

    Raises:
        ValueError: unknown ``use_mamba_type``.
    """

    def __init__(
        self,
        n_embd: int,
        *,
        kernel_size: int = 4,
        n_ds_stride: int = 1,
        drop_path_rate: float = 0.3,
        use_mamba_type: str = "dbm",
    ):
        super().__init__()
        if use_mamba_type == "dbm":
            self.mamba = DBM(n_embd, d_conv=kernel_size, expand=1)
        elif use_mamba_type == "vim":
            self.mamba = ViM(n_embd, d_conv=kernel_size)
        else:
            raise ValueError(f"use_mamba_type must be 'dbm' or 'vim', got {use_mamba_type!r}")
        self.downsample = nn.MaxPool1d(3, stride=2, padding=1) if n_ds_stride > 1 else None
        self.norm = nn.LayerNorm(n_embd, eps=1e-6)
        self.drop_path = AffineDropPath(n_embd, drop_prob=drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x [B, C, T]``, ``mask [B, T]`` -> ``(x [B, C, T'], mask [B, T'])``."""
        out = self.mamba(self.norm(x.transpose(1, 2))).transpose(1, 2)
        x = x + self.drop_path(out * mask[:, None].to(out.dtype))
        if self.downsample is not None:
            x, mask = masked_max_pool(x, mask, self.downsample)
        return x, mask


@PROJECTIONS.register_module()
class MambaProj(SSMPyramidProj):
    """VideoMambaSuite's projection (Chen et al. 2024): :class:`SSMPyramidProj` of :class:`MaskMambaBlock`.

    Args:
        in_channels, out_channels, arch, conv_cfg, norm_cfg, use_abs_pe,
            max_seq_len, input_pdrop: see :class:`SSMPyramidProj`.
        mamba_cfg: ``kernel_size`` (4), ``drop_path_rate`` (0.3) and
            ``use_mamba_type`` ("dbm" or "vim") of every block.

    Raises:
        ValueError: as :class:`SSMPyramidProj`; unknown ``mamba_cfg`` keys (``ConfigError``).
    """

    def __init__(
        self,
        *,
        in_channels: Union[int, Sequence[int]],
        out_channels: Union[int, Sequence[int]],
        arch: Sequence[int] = (2, 2, 5),
        conv_cfg: Optional[Mapping[str, Any]] = None,
        norm_cfg: Optional[Mapping[str, Any]] = None,
        use_abs_pe: bool = False,
        max_seq_len: int = 2304,
        input_pdrop: float = 0.0,
        mamba_cfg: Optional[Mapping[str, Any]] = None,
    ):
        opts = bind(MambaOptions, mamba_cfg, path="MambaProj.mamba_cfg")

        def block(width: int, stride: int) -> nn.Module:
            return MaskMambaBlock(
                width,
                kernel_size=opts.kernel_size,
                n_ds_stride=stride,
                drop_path_rate=opts.drop_path_rate,
                use_mamba_type=opts.use_mamba_type,
            )

        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            arch=arch,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            use_abs_pe=use_abs_pe,
            max_seq_len=max_seq_len,
            input_pdrop=input_pdrop,
            block=block,
        )
