"""Dynamic temporal convolutions of DyFADet (Yang et al., ECCV 2024): the layers of its dynamic head.

Attribute names are upstream OpenTAD's (``opentad/models/dense_heads/dyn_head.py``), so the
state-dict keys of :class:`TemporalGate` (``gate_conv``), :class:`DynamicConv1d` (``conv``,
``norm``, ``gate``), :class:`DTFAM` (``shift_conv``, ``conv``, ``kernel_conv``, ``norm``) and
:class:`DynamicScaleFusion` (``scale_weight``, ``output_weight``, ``depth_module``,
``dynamic_convs``) are upstream's.

The gates (:class:`GateOptions`, :class:`GateActivation`, :class:`TemporalGate`)
live in :mod:`opentad.models.bricks.dynamic_gate` and are importable from here
as before.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.bricks.dynamic_gate import DYN_TYPES, GATE_TYPES, GateActivation, GateOptions, TemporalGate
from opentad.models.bricks.misc import ChannelLayerNorm
from opentad.models.utils.misc import apply_mask

__all__ = [
    "GATE_TYPES",
    "DYN_TYPES",
    "GateOptions",
    "GateActivation",
    "TemporalGate",
    "DynamicConv1d",
    "DTFAM",
    "DynamicScaleFusion",
]

logger = logging.getLogger(__name__)


class DynamicConv1d(nn.Module):
    """``LN(conv(x))`` gated per step by a gate computed from ``x`` (upstream's ``DynamicConv1D_chk``).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: of the conv and the gate conv.
        padding: of both.
        num_groups: groups of the conv and number of gates (see :class:`TemporalGate`).
        activation: the gate's squashing function.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 1,
        padding: int = 0,
        num_groups: int = 1,
        activation: nn.Module,
    ):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=padding, groups=num_groups)
        self.norm = ChannelLayerNorm(out_channels, eps=1e-6)
        self.gate = TemporalGate(
            in_channels, num_groups=num_groups, kernel_size=kernel_size, padding=padding, activation=activation
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x [B, C_in, T]``, ``mask [B, T]`` -> ``[B, C_out, T]``, zero on padded steps."""
        data = apply_mask(self.norm(self.conv(x)), mask)
        return apply_mask(self.gate(data, x, mask), mask)


class DTFAM(nn.Module):
    """Dynamic temporal feature aggregation: every step mixes its ``K`` neighbours with input-dependent weights.

    ``u = shift_conv(x)`` ``[B, C*K, T]`` unfolds the neighbourhood (channel ``c*K + k`` holds
    ``x[c, t + k - K // 2]``, zero outside; a frozen depthwise conv with one-hot kernels,
    ``shift_conv.weight``). The weights ``w`` come from

    * ``conv_type="gate"``: ``w = TemporalGate(u, gate_input=x)``, i.e. ``u * g(x)``, so the
      aggregated value is ``u * w = u^2 g(x)`` (upstream's arithmetic, kept as is);
    * otherwise: ``w = DynamicConv1d(u)`` ``[B, C, T]``, each channel repeated for its ``K`` taps.

    Output: ``LN(conv(u * w))`` (``conv`` a 1x1 conv ``C*K -> C_out``), zero on padded steps.

    Args:
        dim: ``C``.
        out_dim: ``C_out``.
        kernel_size: ``K`` (odd).
        groups: groups of the 1x1 conv and of the dynamic conv (``conv_type`` other than gate).
        conv_type: ``"gate"`` or anything else (upstream's head uses ``"others"``).
        gate: the gate's activation (``type``, ``tau``) and, in gate mode, its sharing (``dyn_type``).

    Raises:
        ValueError: even ``kernel_size``.
    """

    def __init__(
        self, dim: int, out_dim: int, *, kernel_size: int = 3, groups: int = 1, conv_type: str = "gate",
        gate: GateOptions,
    ):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"DTFAM needs an odd kernel_size, got {kernel_size}")
        self.dim, self.kernel_size, self.conv_type = dim, kernel_size, conv_type
        pad = kernel_size // 2
        self.shift_conv = nn.Conv1d(dim, dim * kernel_size, kernel_size, padding=pad, groups=dim, bias=False)
        self.conv = nn.Conv1d(dim * kernel_size, out_dim, kernel_size=1, groups=groups)
        activation = GateActivation(gate.type, tau=gate.tau)
        if conv_type == "gate":
            num_groups = {"c": dim, "k": kernel_size, "ck": dim * kernel_size}[gate.dyn_type]
            self.kernel_conv = TemporalGate(
                dim, num_groups=num_groups, kernel_size=kernel_size, padding=pad, activation=activation
            )
        else:
            self.kernel_conv = DynamicConv1d(
                dim * kernel_size, dim, kernel_size=kernel_size, padding=pad, num_groups=groups, activation=activation
            )
        self.norm = ChannelLayerNorm(out_dim, eps=1e-6)
        self.init_parameters()

    def init_parameters(self) -> None:
        """One-hot unfolding kernels in ``shift_conv``, frozen."""
        one_hot = torch.eye(self.kernel_size).reshape(self.kernel_size, 1, self.kernel_size)
        with torch.no_grad():
            self.shift_conv.weight.copy_(one_hot.repeat(self.dim, 1, 1))
        self.shift_conv.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x [B, C, T]``, ``mask [B, T]`` -> ``[B, C_out, T]``."""
        unfolded = self.shift_conv(x)
        if self.conv_type == "gate":
            weight = self.kernel_conv(unfolded, x, mask)
        else:
            weight = self.kernel_conv(unfolded, mask).repeat_interleave(self.kernel_size, dim=1)
        return apply_mask(self.norm(self.conv(unfolded * weight)), mask)


def source_levels(level: int, num_levels: int, num_adjacent_scales: int) -> List[Tuple[int, int]]:
    """``(s, source level)`` pairs that feed ``level``: its neighbours, skipping itself, inside the pyramid.

    Source ``s`` is ``level + s - n // 2``, moved one up when it is not below ``level``
    (``n = 2``: ``s = 0`` reads ``level - 1``, ``s = 1`` reads ``level + 1``).
    """
    pairs = []
    for s in range(num_adjacent_scales):
        source = level + s - num_adjacent_scales // 2
        source = source if source < level else source + 1
        if 0 <= source < num_levels:
            pairs.append((s, source))
    return pairs


class DynamicScaleFusion(nn.Module):
    """Mix each pyramid level with its neighbours, then aggregate (upstream's ``DynamicScale_chk``).

    For level ``l``: ``y = relu(depth_module(scale_weight * sum_s up(dynamic_convs[s](x_src(s)))
    + output_weight * x_l))`` where the sources are :func:`source_levels` and ``up`` is nearest
    resampling to ``T_l``. ``scale_weight`` starts at 0, ``output_weight`` at 1. The cross-scale
    convs are :class:`DTFAM` in gate mode with the ``GeReTanH`` activation whatever ``gate.type``
    (as upstream).

    Args:
        in_channels: ``C`` of every level.
        kernel_size: ``K`` of the cross-scale convs.
        num_adjacent_scales: ``n``, one cross-scale conv each.
        depth_module: ``(x [B, C, T], mask [B, T]) -> [B, C_out, T]`` after the fusion, or None.
        gate: ``tau`` and ``dyn_type`` of the cross-scale gates.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        kernel_size: int = 1,
        num_adjacent_scales: int = 2,
        depth_module: Optional[nn.Module] = None,
        gate: GateOptions,
    ):
        super().__init__()
        self.num_adjacent_scales = num_adjacent_scales
        self.depth_module = depth_module
        cross_gate = dataclasses.replace(gate, type="GeReTanH")
        self.dynamic_convs = nn.ModuleList(
            DTFAM(in_channels, in_channels, kernel_size=kernel_size, conv_type="gate", gate=cross_gate)
            for _ in range(num_adjacent_scales)
        )
        self.scale_weight = nn.Parameter(torch.zeros(1))
        self.output_weight = nn.Parameter(torch.ones(1))

    def forward(self, inputs: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """``inputs`` ``[B, C, T_l]`` and ``masks`` ``[B, T_l]`` per level -> one ``[B, C_out, T_l]`` per level.

        Each cross-scale conv runs once per source level it feeds (upstream runs every conv on
        every level; the unused results do not enter the output).
        """
        cache: Dict[Tuple[int, int], torch.Tensor] = {}
        outputs = []
        for level, x in enumerate(inputs):
            scaled = []
            for s, source in source_levels(level, len(inputs), self.num_adjacent_scales):
                if (s, source) not in cache:
                    cache[(s, source)] = self.dynamic_convs[s](inputs[source], masks[source])
                scaled.append(F.interpolate(cache[(s, source)], size=x.shape[-1], mode="nearest"))
            fused = sum(scaled) * self.scale_weight + x * self.output_weight
            if self.depth_module is not None:
                fused = self.depth_module(fused, masks[level])
            outputs.append(F.relu(fused))
        return outputs
