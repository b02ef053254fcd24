"""Anchor points of an anchor-free pyramid."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch

from opentad.registry import PRIOR_GENERATORS

__all__ = ["PointGenerator"]


@PRIOR_GENERATORS.register_module()
class PointGenerator:
    """One point per time step of every pyramid level.

    Level ``l`` with length ``T_l`` gives rows ``(t * s_l [+ s_l / 2], r_min, r_max, s_l)``
    for ``t = 0 .. T_l - 1``: the position in input steps, the regression range
    of the level and its stride.

    Args:
        strides: stride ``s_l`` of each level, in input steps.
        regression_range: ``(r_min, r_max)`` per level: the longest distance from
            a point to a boundary of a segment it may be assigned to.
        use_offset: put points at the centres of their cells (``+ s_l / 2``).

    Raises:
        ValueError: ``strides`` and ``regression_range`` differ in length.
    """

    def __init__(
        self,
        *,
        strides: Sequence[int],
        regression_range: Sequence[Tuple[float, float]],
        use_offset: bool = False,
    ):
        if len(strides) != len(regression_range):
            raise ValueError(
                f"PointGenerator: {len(strides)} strides but {len(regression_range)} regression ranges; "
                "give one range per level"
            )
        self.strides = list(strides)
        self.regression_range = [tuple(r) for r in regression_range]
        self.use_offset = use_offset

    def __call__(self, feat_list: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Points of every level.

        Args:
            feat_list: one ``[B, C, T_l]`` tensor per level.

        Returns:
            One float32 ``[T_l, 4]`` tensor per level, on the features' device.

        Raises:
            ValueError: more levels than strides.
        """
        if len(feat_list) > len(self.strides):
            raise ValueError(f"PointGenerator got {len(feat_list)} levels but has {len(self.strides)} strides")
        points = []
        for feat, stride, (r_min, r_max) in zip(feat_list, self.strides, self.regression_range):
            length = feat.shape[-1]
            position = torch.arange(length, dtype=torch.float32, device=feat.device) * stride
            if self.use_offset:
                position = position + 0.5 * stride
            info = torch.tensor([r_min, r_max, stride], dtype=torch.float32, device=feat.device)
            points.append(torch.cat((position[:, None], info.expand(length, 3)), dim=1))
        return points

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(strides={self.strides}, regression_range={self.regression_range}, "
            f"use_offset={self.use_offset})"
        )
