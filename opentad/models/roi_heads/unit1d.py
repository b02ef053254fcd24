"""AFSD's ``Unit1D`` (a 1D convolution with TensorFlow-style "same" padding) and ``Unit3D``.

Kept under upstream's attribute names (``conv1d``, ``conv3d``) so AFSD checkpoints load.
AFSD's neck and coarse head use the same blocks; import them from here.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Unit1D", "Unit3D", "conv_gn_relu", "same_padding"]


def conv_gn_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    """``conv -> GroupNorm(32, channels) -> ReLU`` (keys ``0.*``, ``1.*``), AFSD's building block."""
    return nn.Sequential(conv, nn.GroupNorm(32, channels), nn.ReLU(inplace=True))


def same_padding(length: int, kernel: int, stride: int) -> int:
    """Total "same" padding of one axis of ``length`` positions (the odd one goes at the end)."""
    if length % stride == 0:
        return max(kernel - stride, 0)
    return max(kernel - (length % stride), 0)


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
        return same_padding(length, self._kernel_shape, self._stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, T]`` -> ``[B, C_out, T']``."""
        if self._padding == "same":
            pad = self.compute_pad(x.shape[2])
            x = F.pad(x, [pad // 2, pad - pad // 2])
        x = self.conv1d(x)
        return x if self._activation_fn is None else self._activation_fn(x)


class Unit3D(nn.Module):
    """AFSD's end-to-end input convolution: ``Conv3d`` with upstream's ``"spatial_valid"`` padding.

    The time axis gets "same" padding, height and width none (upstream's neck
    applies a ``[1, 3, 3]`` kernel to ``3 x 3`` backbone maps). Upstream's other
    options (``"same"`` padding, batch norm) are not used by any AFSD config and
    are not offered.

    Args:
        in_channels, output_channels: channel counts.
        kernel_shape: ``(t, h, w)`` kernel; stride: ``(t, h, w)`` stride.
        activation_fn: applied after the convolution (None: none).
        use_bias: whether the convolution has a bias.
    """

    def __init__(
        self,
        in_channels: int,
        output_channels: int,
        kernel_shape: Sequence[int] = (1, 1, 1),
        stride: Sequence[int] = (1, 1, 1),
        activation_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = F.relu,
        use_bias: bool = False,
    ) -> None:
        super().__init__()
        self.conv3d = nn.Conv3d(
            in_channels, output_channels, tuple(kernel_shape), tuple(stride), padding=0, bias=use_bias
        )
        self._activation_fn = activation_fn
        self._kernel_t = int(kernel_shape[0])
        self._stride_t = int(stride[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, T, H, W]`` -> ``[B, C_out, T', H', W']``."""
        pad = same_padding(x.shape[2], self._kernel_t, self._stride_t)
        x = self.conv3d(F.pad(x, [0, 0, 0, 0, pad // 2, pad - pad // 2]))
        return x if self._activation_fn is None else self._activation_fn(x)
