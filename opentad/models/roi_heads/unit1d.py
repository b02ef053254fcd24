"""AFSD's ``Unit1D``: a 1D convolution with TensorFlow-style "same" padding.

Kept under upstream's attribute name (``conv1d``) so AFSD checkpoints load.
AFSD's neck and coarse head use the same block; import it from here.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Unit1D"]


class Unit1D(nn.Module):
    """Conv1d whose padding is worked out from the input length at each call.

    With ``padding="same"`` the output has ``ceil(T / stride)`` positions; the
    extra padding (if odd) goes at the end.

    Args:
        in_channels, output_channels: channel counts.
        kernel_shape: kernel size; stride: stride.
        padding: ``"same"`` or anything else for no padding.
        activation_fn: applied after the convolution (None: none).
        use_bias: whether the convolution has a bias.
    """

    def __init__(
        self,
        in_channels: int,
        output_channels: int,
        kernel_shape: int = 1,
        stride: int = 1,
        padding: str = "same",
        activation_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = F.relu,
        use_bias: bool = True,
    ) -> None:
        super().__init__()
        self.conv1d = nn.Conv1d(in_channels, output_channels, kernel_shape, stride, padding=0, bias=use_bias)
        self._activation_fn = activation_fn
        self._padding = padding
        self._stride = stride
        self._kernel_shape = kernel_shape

    def compute_pad(self, length: int) -> int:
        """Total padding for an input of ``length`` positions."""
        if length % self._stride == 0:
            return max(self._kernel_shape - self._stride, 0)
        return max(self._kernel_shape - (length % self._stride), 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, T]`` -> ``[B, C_out, T']``."""
        if self._padding == "same":
            pad = self.compute_pad(x.shape[2])
            x = F.pad(x, [pad // 2, pad - pad // 2])
        x = self.conv1d(x)
        return x if self._activation_fn is None else self._activation_fn(x)
