"""The residual state-space blocks of VideoMambaSuite (``MaskMambaBlock``) and CausalTAD (``HybridCausalBlock``).

Each is ``x [B, C, T]`` plus a mixer of :mod:`opentad.models.bricks.mamba` on the layer-normed
sequence, masked, with an optional masked max-pool that halves the length.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn as nn

from opentad.models.bricks.mamba import DBM, MixtureCausalBlock, ViM
from opentad.models.bricks.misc import AffineDropPath

__all__ = ["HybridCausalBlock", "MaskMambaBlock", "masked_max_pool"]


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


class HybridCausalBlock(nn.Module):
    """``mask * (x + drop_path(mixer(LN(x))))``, then an optional masked max-pool (kernel 3, stride 2).

    Args:
        n_embd: channels ``C``.
        stride: 1, or 2 to halve the length.
        kernel_size: causal conv kernel of the scan.
        expand: ``d_inner = expand * C`` of the mixer.
        num_head: attention heads of the mixer.
        drop_path_rate: > 0 adds a per-channel scale (``drop_path.scale``) with drop path.

    Raises:
        ValueError: ``stride`` other than 1 or 2.
    """

    def __init__(
        self,
        n_embd: int,
        *,
        stride: int = 1,
        kernel_size: int = 4,
        expand: int = 2,
        num_head: int = 4,
        drop_path_rate: float = 0.3,
    ):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"HybridCausalBlock stride must be 1 or 2, got {stride}")
        self.norm = nn.LayerNorm(n_embd, eps=1e-6)
        self.block = MixtureCausalBlock(n_embd, d_conv=kernel_size, expand=expand, num_head=num_head)
        self.downsample = nn.MaxPool1d(kernel_size=3, stride=2, padding=1) if stride > 1 else None
        if drop_path_rate > 0:
            self.drop_path = AffineDropPath(n_embd, drop_prob=drop_path_rate, transpose=True)
        else:
            self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x [B, C, T]``, ``mask [B, T]`` -> ``(x [B, C, T'], mask [B, T'])``."""
        x = x.transpose(1, 2)
        x = (x + self.drop_path(self.block(self.norm(x)))).transpose(1, 2)
        x = x * mask[:, None].to(x.dtype)
        if self.downsample is not None:
            x, mask = masked_max_pool(x, mask, self.downsample)
        return x, mask
