"""CausalTAD's projection (Liu et al. 2024): hybrid causal Mamba / causal attention blocks."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn as nn

from opentad.models.bricks.mamba import MixtureCausalBlock
from opentad.models.bricks.misc import AffineDropPath
from opentad.models.projections.base import EmbedPyramidProj
from opentad.models.projections.mamba_proj import masked_max_pool
from opentad.registry import PROJECTIONS

__all__ = ["CausalProj", "HybridCausalBlock"]


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


@PROJECTIONS.register_module()
class CausalProj(EmbedPyramidProj):
    """CausalTAD's projection: :class:`HybridCausalBlock` stem and branch.

    Every Linear/conv bias starts at zero except Mamba's ``dt_proj.bias`` (marked ``_no_reinit``).

    Args:
        mamba_kernel_size: causal conv kernel of the scans.
        channel_expand: ``d_inner = channel_expand * C``.
        num_head: attention heads.
        drop_path_rate: drop-path rate of every block.
        **kwargs: the keys of :class:`~opentad.models.projections.base.EmbedPyramidProj`.

    Raises:
        ValueError: as ``EmbedPyramidProj``; ``num_head`` not dividing ``d_inner``.
    """

    def __init__(
        self,
        *,
        mamba_kernel_size: int = 4,
        channel_expand: int = 2,
        num_head: int = 4,
        drop_path_rate: float = 0.3,
        **kwargs,
    ):
        self.mamba_kernel_size = mamba_kernel_size
        self.channel_expand = channel_expand
        self.num_head = num_head
        self.drop_path_rate = drop_path_rate
        super().__init__(**kwargs)

    def make_block(self, index: int, width: int, stride: int) -> nn.Module:
        """A :class:`HybridCausalBlock` with this projection's options."""
        return HybridCausalBlock(
            width,
            stride=stride,
            kernel_size=self.mamba_kernel_size,
            expand=self.channel_expand,
            num_head=self.num_head,
            drop_path_rate=self.drop_path_rate,
        )
