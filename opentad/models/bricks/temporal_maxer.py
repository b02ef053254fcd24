"""TemporalMaxer's parameter-free block: masked temporal max pooling (Tang et al., 2023)."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn as nn

__all__ = ["TemporalMaxerBlock"]


class TemporalMaxerBlock(nn.Module):
    """Max pooling over time, for features and their validity mask alike.

    The output mask is the max pooling of the input mask (a step is valid when
    any step of its window is), or the input mask when ``stride == 1``; the
    pooled features are zeroed where the output mask is False. The block has
    no parameters, so it adds no state-dict key.

    Args:
        kernel_size: pooling window.
        stride: pooling stride (2 halves the length: ``T -> ceil(T / 2)`` with kernel 3, padding 1).
        padding: implicit ``-inf`` padding on both sides.

    Raises:
        ValueError: ``padding`` larger than half the kernel (``nn.MaxPool1d``'s own limit).
    """

    def __init__(self, *, kernel_size: int = 3, stride: int = 2, padding: int = 1):
        super().__init__()
        if 2 * padding > kernel_size:
            raise ValueError(f"TemporalMaxerBlock: padding {padding} must be at most half of kernel_size {kernel_size}")
        self.ds_pooling = nn.MaxPool1d(kernel_size, stride=stride, padding=padding)
        self.stride = stride

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pool.

        Args:
            x: ``[B, C, T]`` features.
            mask: ``[B, T]`` bool, True on valid steps.

        Returns:
            ``(x [B, C, T'], mask [B, T'])``.
        """
        if self.stride > 1:
            mask = self.ds_pooling(mask[:, None].float())[:, 0].bool()
        out = self.ds_pooling(x) * mask[:, None].to(x.dtype)
        return out, mask
