"""The gates of DyFADet's dynamic layers (Yang et al., ECCV 2024): options, squashing functions, gating.

:class:`GateOptions` is upstream's ``dyn_head_cfg``; :class:`GateActivation`
squashes a gate; :class:`TemporalGate` multiplies data by gates computed from
another input (attribute ``gate_conv``, as upstream's state-dict keys). The
layers that use them are in :mod:`opentad.models.bricks.dynamic_conv`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

__all__ = ["GATE_TYPES", "DYN_TYPES", "GateOptions", "GateActivation", "TemporalGate"]

GATE_TYPES = ("ReTanH", "ReLU", "Sigmoid", "GeReTanH")
DYN_TYPES = ("c", "k", "ck")


@dataclass
class GateOptions:
    """``dyn_head_cfg`` of upstream's ``TDynHead``.

    Args:
        type: gate activation of the head's aggregation layers (``GATE_TYPES``).
        tau: the shift of ``GeReTanH``.
        init_gate: accepted for upstream's configs; upstream never reads it.
        dyn_type: how the cross-scale gates are shared: ``"c"`` one per channel, ``"k"`` one per
            kernel tap, ``"ck"`` one per channel and tap.
    """

    type: str = "GeReTanH"
    tau: float = 1.5
    init_gate: float = 0.1
    dyn_type: str = "c"

    def __post_init__(self):
        if self.type not in GATE_TYPES:
            raise ValueError(f"gate type {self.type!r} is not supported; valid: {list(GATE_TYPES)}")
        if self.dyn_type not in DYN_TYPES:
            raise ValueError(f"dyn_type {self.dyn_type!r} is not supported; valid: {list(DYN_TYPES)}")


class GateActivation(nn.Module):
    """The gate's squashing function (no parameters).

    ``ReTanH``: ``max(tanh x, 0)``; ``ReLU``; ``Sigmoid``; ``GeReTanH``:
    ``max((tanh(x - tau) + tanh tau) / (1 + tanh tau), 0)``, which is 0 at ``x = 0`` and tends to 1.

    Raises:
        ValueError: unknown ``kind``.
    """

    def __init__(self, kind: str, *, tau: float = 1.5):
        super().__init__()
        if kind not in GATE_TYPES:
            raise ValueError(f"gate type {kind!r} is not supported; valid: {list(GATE_TYPES)}")
        self.kind = kind
        self.tau = tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "ReTanH":
            return torch.tanh(x).clamp(min=0)
        if self.kind == "ReLU":
            return torch.relu(x)
        if self.kind == "Sigmoid":
            return torch.sigmoid(x)
        tanh_tau = math.tanh(self.tau)
        return ((torch.tanh(x - self.tau) + tanh_tau) / (1 + tanh_tau)).clamp(min=0)

    def extra_repr(self) -> str:
        return f"{self.kind}, tau={self.tau}" if self.kind == "GeReTanH" else self.kind


class TemporalGate(nn.Module):
    """Multiply data by gates computed from another input, one gate per group of data channels.

    ``gate = act(gate_conv(gate_input)) * mask`` has ``G = num_groups`` channels. How they
    meet the ``D`` data channels follows upstream's order of tests:

    * ``G == kernel_size`` (per tap): data ``[B, C*K, T]`` holds channels ``(c, k)``; they are
      reordered to ``(k, c)``, block ``k`` is multiplied by gate ``k``, and the result stays
      in the ``(k, c)`` order (as upstream returns it);
    * ``G == kernel_size * in_channels`` (per channel and tap): elementwise, the gate conv is
      depthwise with ``K`` outputs per channel;
    * otherwise: ``D / G`` consecutive data channels share a gate (gate conv with ``groups=G``).

    Args:
        in_channels: channels ``C`` of ``gate_input``.
        num_groups: ``G``.
        kernel_size: ``K`` of the gate conv.
        padding: its zero padding.
        activation: the squashing function (:class:`GateActivation`).

    Raises:
        ValueError: (forward) the data channels do not split into the gate's groups.
    """

    def __init__(self, in_channels: int, *, num_groups: int, kernel_size: int, padding: int, activation: nn.Module):
        super().__init__()
        if num_groups == kernel_size:
            self.mode, conv_groups = "tap", 1
        elif num_groups == kernel_size * in_channels:
            self.mode, conv_groups = "channel", in_channels
        else:
            self.mode, conv_groups = "group", num_groups
        self.in_channels = in_channels
        self.num_groups = num_groups
        self.kernel_size = kernel_size
        self.gate_conv = nn.Conv1d(in_channels, num_groups, kernel_size, padding=padding, groups=conv_groups)
        self.activation = activation

    def forward(self, data: torch.Tensor, gate_input: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``data [B, D, T]``, ``gate_input [B, C, T]``, ``mask [B, T]`` -> gated data ``[B, D, T]``."""
        gate = self.activation(self.gate_conv(gate_input)) * mask[:, None].to(data.dtype)
        batch, channels, length = data.shape
        if self.mode == "channel":
            return data * gate
        if self.mode == "tap":
            if channels != self.in_channels * self.kernel_size:
                raise ValueError(f"TemporalGate: per-tap gates need {self.in_channels * self.kernel_size} data "
                                 f"channels, got {channels}")
            taps = data.view(batch, self.in_channels, self.kernel_size, length).transpose(1, 2)  # [B, K, C, T]
            return (taps * gate[:, :, None]).reshape(batch, channels, length)
        if channels % self.num_groups:
            raise ValueError(f"TemporalGate: {channels} data channels do not split into {self.num_groups} groups")
        grouped = data.view(batch, self.num_groups, channels // self.num_groups, length)
        return (grouped * gate[:, :, None]).reshape(batch, channels, length)
