"""The frame the feature-pyramid projections share (:class:`PyramidProj`); each family supplies its blocks."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.bricks.conv import ConvModule
from opentad.models.bricks.misc import sinusoid_encoding
from opentad.models.utils.misc import apply_mask
from opentad.registry import bind

__all__ = ["PyramidProj", "EmbedPyramidProj", "EmbedConvOptions", "build_input_proj", "per_level", "zero_bias"]

logger = logging.getLogger(__name__)

Pyramid = Tuple[Tuple[torch.Tensor, ...], Tuple[torch.Tensor, ...]]


@dataclass
class EmbedConvOptions:
    """``conv_cfg`` of a projection: the kernel size of the embedding convs."""

    kernel_size: int = 3


def build_input_proj(
    in_channels: Union[int, Sequence[int]], out_channels: Union[int, Sequence[int]]
) -> Tuple[Optional[nn.ModuleList], int, int]:
    """One 1x1 conv per input feature when several are concatenated.

    Args:
        in_channels: input channels, or one entry per concatenated feature.
        out_channels: width, or one entry per feature (the width is their sum).

    Returns:
        ``(proj, width_in, width)``: the convs (None for a single feature), the
        channels the embedding receives and the pyramid's width.

    Raises:
        ValueError: one argument a list and the other not, or lists of different lengths.
    """
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


def per_level(values: Union[int, Sequence[int]], num_levels: int, name: str) -> List[int]:
    """One value per pyramid level: an int repeated, or a list checked for length.

    Args:
        values: one value for every level, or one per level.
        num_levels: ``1 + arch[2]``.
        name: the option's name, for the error.

    Raises:
        ValueError: a list without ``num_levels`` entries.
    """
    if isinstance(values, int):
        return [values] * num_levels
    if len(values) != num_levels:
        raise ValueError(f"{name} has {len(values)} entries; expected one per level (1 + arch[2] = {num_levels})")
    return list(values)


def zero_bias(module: nn.Module) -> None:
    """Zero the bias of a ``Linear`` / ``Conv1d`` unless it is marked ``_no_reinit`` (Mamba's ``dt_proj.bias``)."""
    if isinstance(module, (nn.Linear, nn.Conv1d)) and module.bias is not None:
        if not getattr(module.bias, "_no_reinit", False):
            nn.init.zeros_(module.bias)


class PyramidProj(nn.Module):
    """Features ``[B, C_in, T]`` -> pyramid of ``1 + arch[2]`` levels ``[B, C_out, T_l]``.

    The stem output (the embedding when there is no stem) and every branch
    output form the pyramid. A subclass implements :meth:`make_block`, may
    override :meth:`check_options`, and sets the class switches below. The
    options its hooks read are set on ``self`` *before* calling this
    constructor (plain values): the modules are built here, in the order
    input convs, embedding, stem, branch, which fixes the seeded init.

    Class switches:
        mask_input: zero padded steps on entry (ActionFormer).
        dropout_before_proj: channel dropout before the input convs (TemporalMaxer), else after.
        uses_stem: build ``arch[1]`` stem blocks (TemporalMaxer has none).
        zero_init_bias: zero every Linear/Conv1d bias once built (see :func:`zero_bias`).

    Args:
        in_channels: input channels, or one per concatenated feature (``proj.i``).
        out_channels: width ``C_out``, or one per feature (summed).
        arch: ``(n_embed, n_stem, n_branch)``.
        kernel_size: kernel of the embedding convs (padding ``kernel_size // 2``).
        norm_cfg: norm of the embedding convs (e.g. ``dict(type="LN")``) or None.
        use_abs_pe: add a sinusoidal table ``/ sqrt(C_out)`` (masked) after the embedding.
        max_seq_len: length of that table; longer training inputs are refused,
            inference inputs of at least this length get it stretched (linear).
        input_pdrop: channel dropout (``nn.Dropout1d``) on the input.
        input_noise: std of Gaussian noise added to the input in training.

    Raises:
        ValueError: ``arch`` is not three numbers, channel lists disagree, or
            ``use_abs_pe`` without ``max_seq_len``; (forward) a training input
            longer than ``max_seq_len`` with ``use_abs_pe``.
    """

    mask_input: bool = False
    dropout_before_proj: bool = False
    uses_stem: bool = True
    zero_init_bias: bool = True

    def __init__(
        self,
        *,
        in_channels: Union[int, Sequence[int]],
        out_channels: Union[int, Sequence[int]],
        arch: Sequence[int],
        kernel_size: int = 3,
        norm_cfg: Optional[Mapping[str, Any]] = None,
        use_abs_pe: bool = False,
        max_seq_len: Optional[int] = None,
        input_pdrop: float = 0.0,
        input_noise: float = 0.0,
    ):
        super().__init__()
        if len(arch) != 3:
            raise ValueError(f"{type(self).__name__} arch must be (n_embed, n_stem, n_branch), got {arch!r}")
        if use_abs_pe and max_seq_len is None:
            raise ValueError(f"{type(self).__name__}: use_abs_pe needs max_seq_len")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.arch = tuple(arch)
        self.kernel_size = kernel_size
        self.scale_factor = 2
        self.with_norm = norm_cfg is not None
        self.use_abs_pe = use_abs_pe
        self.max_seq_len = max_seq_len
        self.input_noise = input_noise
        self.check_options()
        self.input_pdrop = nn.Dropout1d(p=input_pdrop) if input_pdrop > 0 else None
        self.proj, width_in, width = build_input_proj(in_channels, out_channels)
        if use_abs_pe:
            self.register_buffer("pos_embed", sinusoid_encoding(max_seq_len, width) / (width**0.5), persistent=False)
        self.embed = nn.ModuleList(
            ConvModule(
                width_in if i == 0 else width,
                width,
                kernel_size=kernel_size,
                padding=kernel_size // 2,
                norm_cfg=norm_cfg,
                act_cfg=dict(type="relu"),
            )
            for i in range(self.arch[0])
        )
        self.stem = nn.ModuleList(self.make_block(i, width, 1) for i in range(self.arch[1] if self.uses_stem else 0))
        self.branch = nn.ModuleList(self.make_block(i, width, self.scale_factor) for i in range(self.arch[2]))
        if self.zero_init_bias:
            self.apply(zero_bias)

    def check_options(self) -> None:
        """Validate and derive options that depend on ``self.arch`` (before any module is built).

        Raises:
            ValueError: in a subclass, an option that does not fit ``arch``.
        """

    def make_block(self, index: int, width: int, stride: int) -> nn.Module:
        """Stem block ``index`` (``stride`` 1) or branch block ``index`` (``stride`` = ``scale_factor``).

        The block maps ``(x [B, width, T], mask [B, T])`` to ``(x [B, width, T / stride], mask)``.

        Raises:
            NotImplementedError: here; a subclass builds its blocks.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement make_block")

    def _position_table(self, length: int) -> torch.Tensor:
        """``[1, C, length]``: the table, stretched (linear) at inference when ``length >= max_seq_len``.

        Raises:
            ValueError: a training input longer than ``max_seq_len``.
        """
        if self.training and length > self.max_seq_len:
            raise ValueError(
                f"{type(self).__name__}: training input of length {length} exceeds max_seq_len={self.max_seq_len}"
            )
        if not self.training and length >= self.max_seq_len:
            return F.interpolate(self.pos_embed, length, mode="linear", align_corners=False)
        return self.pos_embed[:, :, :length]

    def _prepare_input(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, T]`` -> ``[B, width_in, T]``: masking, noise, dropout and the input convs, in order."""
        if self.mask_input:
            x = apply_mask(x, mask)
        if self.training and self.input_noise > 0:
            x = x + torch.randn_like(x) * self.input_noise
        if self.dropout_before_proj and self.input_pdrop is not None:
            x = self.input_pdrop(x)
        if self.proj is not None:
            parts = x.split(list(self.in_channels), dim=1)
            x = torch.cat([proj(part, mask)[0] for proj, part in zip(self.proj, parts)], dim=1)
        if not self.dropout_before_proj and self.input_pdrop is not None:
            x = self.input_pdrop(x)
        return x

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Pyramid:
        """Project.

        Args:
            x: ``[B, C_in, T]``.
            mask: ``[B, T]`` bool, True on valid steps.

        Returns:
            ``(feats, masks)``: ``1 + arch[2]`` tensors ``[B, C_out, T_l]`` and
            masks ``[B, T_l]`` (``T_0 = T``; the blocks set how ``T_l`` shrinks).
        """
        x = self._prepare_input(x, mask)
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


class EmbedPyramidProj(PyramidProj):
    """:class:`PyramidProj` with the config keys that upstream's ``Conv1DTransformerProj``,
    ``MambaProj`` and ``CausalProj`` share; a family adds its own keys and forwards ``**kwargs``.

    Args:
        in_channels, out_channels, arch, norm_cfg, use_abs_pe, max_seq_len,
            input_pdrop: as :class:`PyramidProj`.
        conv_cfg: bound to the class's ``conv_options`` (``kernel_size`` of the
            embedding convs, 3), kept as ``self.conv_opts``.

    Raises:
        ValueError: as :class:`PyramidProj`; unknown ``conv_cfg`` keys (``ConfigError``).
    """

    conv_options: type = EmbedConvOptions

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
    ):
        self.conv_opts = bind(self.conv_options, conv_cfg, path=f"{type(self).__name__}.conv_cfg")
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            arch=arch,
            kernel_size=self.conv_opts.kernel_size,
            norm_cfg=norm_cfg,
            use_abs_pe=use_abs_pe,
            max_seq_len=max_seq_len,
            input_pdrop=input_pdrop,
        )
