"""CausalTAD's projection (Liu et al. 2024): hybrid causal Mamba / causal attention blocks."""
from __future__ import annotations

import torch.nn as nn

from opentad.models.bricks.mamba_blocks import HybridCausalBlock
from opentad.models.projections.base import EmbedPyramidProj
from opentad.registry import PROJECTIONS

__all__ = ["CausalProj"]


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
