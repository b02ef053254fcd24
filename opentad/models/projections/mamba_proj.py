"""VideoMambaSuite's projection (``MambaProj``), its block, and the masked max-pool ``CausalProj`` shares."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from opentad.models.bricks.mamba import DBM, ViM
from opentad.models.bricks.misc import AffineDropPath
from opentad.models.projections.base import EmbedPyramidProj
from opentad.registry import PROJECTIONS, bind

__all__ = ["MambaProj", "MaskMambaBlock", "MambaOptions", "masked_max_pool"]

logger = logging.getLogger(__name__)


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
class MambaProj(EmbedPyramidProj):
    """VideoMambaSuite's projection (Chen et al. 2024): :class:`MaskMambaBlock` stem and branch.

    Every Linear/conv bias starts at zero except Mamba's ``dt_proj.bias`` (marked ``_no_reinit``).

    Args:
        mamba_cfg: ``kernel_size`` (4), ``drop_path_rate`` (0.3) and
            ``use_mamba_type`` ("dbm" or "vim") of every block.
        **kwargs: the keys of :class:`~opentad.models.projections.base.EmbedPyramidProj`.

    Raises:
        ValueError: as ``EmbedPyramidProj``; unknown ``mamba_cfg`` keys (``ConfigError``).
    """

    def __init__(self, *, mamba_cfg: Optional[Mapping[str, Any]] = None, **kwargs):
        self.mamba_opts = bind(MambaOptions, mamba_cfg, path="MambaProj.mamba_cfg")
        super().__init__(**kwargs)

    def make_block(self, index: int, width: int, stride: int) -> nn.Module:
        """A :class:`MaskMambaBlock` with the ``mamba_cfg`` options."""
        opts = self.mamba_opts
        return MaskMambaBlock(
            width,
            kernel_size=opts.kernel_size,
            n_ds_stride=stride,
            drop_path_rate=opts.drop_path_rate,
            use_mamba_type=opts.use_mamba_type,
        )
