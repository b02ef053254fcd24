"""TriDet's projection: conv embedding, SGP stem, downsampling SGP branch."""
from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Sequence

import torch.nn as nn

from opentad.models.bricks.sgp import SGPBlock
from opentad.models.projections.base import EmbedConvOptions, PyramidProj, per_level
from opentad.registry import PROJECTIONS, bind

__all__ = ["TriDetProj", "TriDetConvOptions"]

logger = logging.getLogger(__name__)

TriDetConvOptions = EmbedConvOptions  # ``conv_cfg``: the kernel size of the embedding convs


@PROJECTIONS.register_module()
class TriDetProj(PyramidProj):
    """Features ``[B, C_in, T]`` -> pyramid of ``1 + arch[2]`` levels ``[B, C_out, T / 2^l]``.

    ``arch = (n_embed, n_stem, n_branch)``: ``n_embed`` masked convs (ReLU),
    ``n_stem`` SGP blocks at full rate (kernel 1, no drop path), then
    ``n_branch`` SGP blocks that each halve the length (kernel
    ``sgp_win_size[1 + i]``, drop path ``path_pdrop``); the stem output and every
    branch output form the pyramid. Keys and arithmetic are upstream OpenTAD's
    (``opentad/models/projections/tridet_proj.py`` there).

    Args:
        in_channels, arch, norm_cfg, use_abs_pe, max_seq_len, input_noise: as
            :class:`~opentad.models.projections.base.PyramidProj` (one input feature).
        out_channels: width ``C_out`` (a multiple of 16: the blocks' GroupNorm).
        sgp_mlp_dim: hidden width of the SGP blocks' MLP.
        sgp_win_size: one instant-level kernel per level (``1 + n_branch``
            entries; entry 0 is unused: the stem uses 1).
        downsample_type: ``"max"`` or ``"avg"`` (see :class:`SGPBlock`).
        k: granularity ratio of the SGP window-level branch.
        init_conv_vars: std of the normal init of the SGP convs.
        conv_cfg: ``kernel_size`` of the embedding convs (3).
        path_pdrop: drop-path rate of the branch blocks.

    Raises:
        ValueError: ``arch`` is not three numbers or ``sgp_win_size`` has not ``1 + arch[2]`` entries;
            (forward) a training input longer than ``max_seq_len`` with ``use_abs_pe``.
    """

    zero_init_bias = False  # the SGP blocks initialise their own convs

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
        conv = bind(TriDetConvOptions, conv_cfg, path="TriDetProj.conv_cfg")
        self.path_pdrop = path_pdrop
        self.sgp_win_size = list(sgp_win_size)
        self.downsample_type = downsample_type
        self._sgp = dict(n_hidden=sgp_mlp_dim, k=k, init_conv_vars=init_conv_vars)
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            arch=arch,
            kernel_size=conv.kernel_size,
            norm_cfg=norm_cfg,
            use_abs_pe=use_abs_pe,
            max_seq_len=max_seq_len,
            input_noise=input_noise,
        )

    def check_options(self) -> None:
        """Check ``sgp_win_size`` has one entry per level.

        Raises:
            ValueError: ``sgp_win_size`` has not ``1 + arch[2]`` entries.
        """
        name = f"{type(self).__name__} sgp_win_size"
        self.sgp_win_size = per_level(self.sgp_win_size, 1 + self.arch[2], name)

    def make_block(self, index: int, width: int, stride: int) -> nn.Module:
        """SGP block: in the stem kernel 1 and no drop path; in the branch kernel
        ``sgp_win_size[1 + index]``, drop path ``path_pdrop`` and ``downsample_type``."""
        if stride == 1:
            return SGPBlock(width, kernel_size=1, n_ds_stride=1, **self._sgp)
        return SGPBlock(
            width,
            kernel_size=self.sgp_win_size[1 + index],
            n_ds_stride=stride,
            path_pdrop=self.path_pdrop,
            downsample_type=self.downsample_type,
            **self._sgp,
        )
