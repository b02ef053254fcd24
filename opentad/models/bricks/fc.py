"""Fully connected stacks of the proposal heads (upstream's ``ConvFC`` and ``FCHead``).

Attribute names are upstream's, so state-dict keys are ``convs.{i}.0.*``,
``fcs.{i}.0.*`` and ``head.*`` (each stage is ``Sequential(layer, ReLU)``).
Every ``Linear`` / ``Conv1d`` starts Xavier-uniform with zero bias, as upstream.
"""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["ConvFC", "FCHead", "fc_stack", "xavier_init"]


def xavier_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every ``nn.Linear`` and ``nn.Conv1d`` inside ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def fc_stack(in_features: int, width: int, num: int) -> nn.Sequential:
    """``num`` stages ``Sequential(Linear, ReLU)``, the first from ``in_features``, then ``width`` wide."""
    return nn.Sequential(
        *(nn.Sequential(nn.Linear(in_features if i == 0 else width, width), nn.ReLU()) for i in range(num))
    )


class ConvFC(nn.Module):
    """RoI features ``[N, C, R]`` -> ``convs_num`` (conv3, ReLU) -> flatten -> ``fcs_num`` (fc, ReLU).

    Args:
        in_channels: ``C``.
        roi_size: ``R``, bins per RoI.
        convs_num: number of kernel-3 convs (0: none).
        convs_channel: their width.
        fcs_num: number of fully connected stages (0: none, the output stays ``[N, C', R]``).
        fcs_channel: their width.
    """

    def __init__(
        self,
        *,
        in_channels: int = 256,
        roi_size: int = 32,
        convs_num: int = 4,
        convs_channel: int = 128,
        fcs_num: int = 1,
        fcs_channel: int = 512,
    ):
        super().__init__()
        self.convs_num = convs_num
        self.fcs_num = fcs_num
        self.convs = nn.Sequential(
            *(
                nn.Sequential(nn.Conv1d(convs_channel if i else in_channels, convs_channel, 3, padding=1), nn.ReLU())
                for i in range(convs_num)
            )
        )
        width = convs_channel if convs_num > 0 else in_channels
        self.fcs = fc_stack(width * roi_size, fcs_channel, fcs_num)
        xavier_init(self)

    def forward(self, roi_feats: torch.Tensor) -> torch.Tensor:
        """``[N, C, R]`` -> ``[N, fcs_channel]`` (or ``[N, C', R]`` without fcs)."""
        x = self.convs(roi_feats)
        return self.fcs(x.flatten(1)) if self.fcs_num > 0 else x


class FCHead(nn.Module):
    """``fcs_num`` stages (fc, ReLU) of width ``fcs_channel``, then a linear ``head``.

    Args:
        in_channels: input features.
        out_channels: outputs of ``head``.
        fcs_num: hidden stages (at least 1).
        fcs_channel: their width.

    Raises:
        ValueError: ``fcs_num < 1``.
    """

    def __init__(self, *, in_channels: int, out_channels: int, fcs_num: int = 3, fcs_channel: int = 128):
        super().__init__()
        if fcs_num < 1:
            raise ValueError(f"FCHead: fcs_num must be at least 1, got {fcs_num}")
        self.fcs = fc_stack(in_channels, fcs_channel, fcs_num)
        self.head = nn.Linear(fcs_channel, out_channels)
        xavier_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, in_channels]`` -> ``[N, out_channels]``."""
        return self.head(self.fcs(x))
