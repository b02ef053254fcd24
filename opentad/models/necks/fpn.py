"""Feature-pyramid necks."""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from opentad.models.bricks.conv import build_norm_1d
from opentad.registry import NECKS

__all__ = ["FPNIdentity"]

_LAYER_NORM = MappingProxyType({"type": "LN"})


@NECKS.register_module()
class FPNIdentity(nn.Module):
    """Per-level normalisation of an existing pyramid (no top-down path).

    Levels ``start_level .. end_level - 1`` are kept, each through its own norm
    (``fpn_norms.i``); masks pass through unchanged.

    Args:
        in_channels: channels of every input level (must equal ``out_channels``).
        out_channels: channels of every output level.
        num_levels: number of input levels.
        scale_factor: downsampling between levels (kept for config compatibility).
        start_level: first level kept.
        end_level: one past the last level kept; -1 for all.
        norm_cfg: ``dict(type="LN")`` (default), GN/BN configs, or None for no norm.

    Raises:
        ValueError: channel mismatch or a level range outside ``[0, num_levels]``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        num_levels: int,
        scale_factor: float = 2.0,
        start_level: int = 0,
        end_level: int = -1,
        norm_cfg: Optional[Mapping[str, Any]] = _LAYER_NORM,
    ):
        super().__init__()
        if in_channels != out_channels:
            raise ValueError(f"FPNIdentity needs in_channels == out_channels, got {in_channels} and {out_channels}")
        self.in_channels = [in_channels] * num_levels
        self.out_channel = out_channels
        self.scale_factor = scale_factor
        self.start_level = start_level
        self.end_level = num_levels if end_level == -1 else end_level
        if not 0 <= start_level < self.end_level <= num_levels:
            raise ValueError(
                f"FPNIdentity levels must satisfy 0 <= start_level < end_level <= num_levels; got "
                f"start_level={start_level}, end_level={end_level}, num_levels={num_levels}"
            )
        self.fpn_norms = nn.ModuleList(
            build_norm_1d(norm_cfg, out_channels) for _ in range(self.start_level, self.end_level)
        )

    def forward(
        self, inputs: Sequence[torch.Tensor], fpn_masks: Sequence[torch.Tensor]
    ) -> Tuple[Tuple[torch.Tensor, ...], Tuple[torch.Tensor, ...]]:
        """Normalise each kept level.

        Args:
            inputs: ``num_levels`` tensors ``[B, C, T_l]``.
            fpn_masks: ``num_levels`` masks ``[B, T_l]``.

        Returns:
            ``(feats, masks)`` of the kept levels.

        Raises:
            ValueError: wrong number of levels.
        """
        if len(inputs) != len(self.in_channels) or len(fpn_masks) != len(self.in_channels):
            raise ValueError(
                f"FPNIdentity expects {len(self.in_channels)} levels, got {len(inputs)} features and "
                f"{len(fpn_masks)} masks"
            )
        levels = range(self.start_level, self.end_level)
        feats = tuple(norm(inputs[level]) for norm, level in zip(self.fpn_norms, levels))
        return feats, tuple(fpn_masks[level] for level in levels)
