"""AFSD's neck (upstream ``AFSDNeck``): a strided 1D pyramid and the frame-level feature.

Module and parameter names follow upstream (``pyramids.{i}.0.conv1d``,
``deconv.{0,3,6}.conv1d``, GroupNorms beside them), so AFSD checkpoints load.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.roi_heads.unit1d import Unit1D, Unit3D, conv_gn_relu
from opentad.registry import NECKS

__all__ = ["AFSDNeck", "glorot_uniform_"]


def glorot_uniform_(weight: torch.Tensor) -> torch.Tensor:
    """Upstream's Glorot initialisation: ``U(-l, l)``, ``l = sqrt(3 / max(1, (fan_in + fan_out) / 2))``."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    limit = math.sqrt(3.0 * (1.0 / max(1.0, (fan_in + fan_out) / 2.0)))
    return nn.init.uniform_(weight, -limit, limit)


@NECKS.register_module()
class AFSDNeck(nn.Module):
    """``layer_num`` levels (level 0 a kernel-1 projection, then stride-2 convolutions) plus the
    frame-level feature: level 0 resized (nearest) to ``frame_num`` steps and refined by three convs.

    Every level is multiplied by its mask (each level's mask max-pooled by 2 from the one above),
    as upstream.

    Args:
        in_channels: input channels (``[B, C_in, T]``, or ``[B, C_in, T, H, W]`` with ``e2e``).
        out_channels: width of every level (a multiple of 32: GroupNorm with 32 groups).
        frame_num: length of the frame-level feature.
        layer_num: pyramid levels; ``T`` must be divisible by ``2 ** (layer_num - 1)``.
        e2e: the input comes from a video backbone (``[B, C, T, 3, 3]``): level 0 is a ``[1, 3, 3]``
            3D convolution (key ``pyramids.0.0.conv3d``) instead of a kernel-1 1D convolution.
    """

    def __init__(self, *, in_channels: int, out_channels: int, frame_num: int, layer_num: int = 6, e2e: bool = False):
        super().__init__()
        self.frame_num = frame_num
        self.layer_num = layer_num
        if e2e:
            first = Unit3D(in_channels, out_channels, (1, 3, 3), use_bias=True, activation_fn=None)
        else:
            first = Unit1D(in_channels, out_channels, kernel_shape=1, use_bias=True, activation_fn=None)
        self.pyramids = nn.ModuleList([conv_gn_relu(first, out_channels)])
        for _ in range(1, layer_num):
            conv = Unit1D(out_channels, out_channels, kernel_shape=3, stride=2, use_bias=True, activation_fn=None)
            self.pyramids.append(conv_gn_relu(conv, out_channels))
        self.deconv = nn.Sequential(
            *conv_gn_relu(Unit1D(out_channels, out_channels, 3, activation_fn=None), out_channels),
            *conv_gn_relu(Unit1D(out_channels, out_channels, 3, activation_fn=None), out_channels),
            *conv_gn_relu(Unit1D(out_channels, out_channels, 1, activation_fn=None), out_channels),
        )
        self.init_weights()

    def init_weights(self) -> None:
        """Convolutions Glorot-uniform with zero bias, GroupNorms identity (upstream's init)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv3d)):
                glorot_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(
        self, x: torch.Tensor, masks: torch.Tensor
    ) -> Tuple[Tuple[List[torch.Tensor], torch.Tensor], List[torch.Tensor]]:
        """Pyramid and frame-level feature.

        Args:
            x: ``[B, C_in, T]`` (``[B, C_in, T, 3, 3]`` with ``e2e``).
            masks: ``[B, T]`` bool, True on valid steps.

        Returns:
            ``((pyramid, frame_level), level_masks)``: ``pyramid`` the levels ``[B, C, T / 2^i]``,
            ``frame_level`` ``[B, C, frame_num]``, ``level_masks`` the levels' masks ``[B, T / 2^i]``.

        Raises:
            ValueError: ``T`` is not divisible by ``2 ** (layer_num - 1)`` (the levels' lengths and
                their masks' would differ).
        """
        length = x.shape[2]
        if length % 2 ** (self.layer_num - 1):
            raise ValueError(
                f"AFSDNeck: the input length {length} must be divisible by 2 ** (layer_num - 1) = "
                f"{2 ** (self.layer_num - 1)}"
            )
        pyramid, level_masks = [], []
        for i, level in enumerate(self.pyramids):
            if i == 0:
                x = level(x)
                x = x.squeeze(-1).squeeze(-1) if x.dim() == 5 else x
            else:
                masks = F.max_pool1d(masks.unsqueeze(1).float(), kernel_size=2, stride=2).squeeze(1).bool()
                x = level(x)
            x = x * masks[:, None, :].detach().float()
            pyramid.append(x)
            level_masks.append(masks)
        frame_level = F.interpolate(pyramid[0], size=self.frame_num, mode="nearest")
        return (pyramid, self.deconv(frame_level)), level_masks
