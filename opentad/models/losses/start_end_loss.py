"""AFSD's boundary losses (upstream ``BCELoss`` and ``AFSD.compute_start_end_loss``).

The frame-level start / end features and the level-0 boundary features of both refinement
branches are averaged over channels after a ``tanh`` and trained with BCE towards binary
start / end maps of the ground truth (:func:`start_end_targets`).
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["StartEndLoss", "start_end_targets", "tanh_bce"]


@torch.no_grad()
def start_end_targets(gt_segments: Sequence[torch.Tensor], clip_len: int) -> torch.Tensor:
    """Start and end maps ``[B, 2, clip_len]`` (float32 0 / 1).

    For a ground truth ``(s, e)`` in frames (``segment * clip_len``) and ``d = max((e - s) / 10, 2)``,
    frames ``round(s - d / 2)`` to ``round(s + d / 2)`` (inclusive, each clamped to the clip; rounding
    half to even) are starts, and likewise around ``e`` ends. Computed in float32, as upstream's
    NumPy code does with NumPy 2 (NumPy 1 promoted ``(e - s) / 10.0`` to float64, which can round a
    boundary falling exactly on ``.5`` the other way).

    Args:
        gt_segments: per video ``[N, 2]`` normalised to ``[0, 1]``.
        clip_len: frames of the window.
    """
    maps = []
    for segments in gt_segments:
        frames = segments.detach().float().cpu() * clip_len
        frames = frames.view(-1, 2)
        half = torch.clamp((frames[:, 1] - frames[:, 0]) / 10.0, min=2.0) / 2
        position = torch.arange(clip_len)
        per_boundary = []
        for point in (frames[:, 0], frames[:, 1]):
            low = torch.round(point - half).long().clamp(0, clip_len - 1)
            high = torch.round(point + half).long().clamp(0, clip_len - 1)
            inside = (position[None] >= low[:, None]) & (position[None] <= high[:, None])  # [N, clip_len]
            per_boundary.append(inside.any(0))
        maps.append(torch.stack(per_boundary).float())
    return torch.stack(maps)


def tanh_bce(start: torch.Tensor, end: torch.Tensor, scores: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Upstream ``BCELoss``: mean BCE of ``tanh(x).mean(channels)`` against ``scores``.

    Args:
        start, end: ``[B, T, C]`` non-negative features (after a ReLU, so ``tanh`` lies in ``[0, 1)``).
        scores: ``[B, 2, T]`` start / end maps.

    Returns:
        ``(loss_start, loss_end)``.
    """
    start = torch.tanh(start).mean(-1)
    end = torch.tanh(end).mean(-1)
    scores = scores.to(start.device)
    loss_start = F.binary_cross_entropy(start.view(-1), scores[:, 0].contiguous().view(-1), reduction="mean")
    loss_end = F.binary_cross_entropy(end.view(-1), scores[:, 1].contiguous().view(-1), reduction="mean")
    return loss_start, loss_end


class StartEndLoss(nn.Module):
    """``loss_start`` / ``loss_end``: frame level plus 0.1 x (loc + conf branch) level 0.

    The level-0 maps are the frame maps subsampled by ``scale_factor`` (nearest interpolation).

    Args:
        clip_len: frames of the window (the frame-level length).
        scale_factor: ``clip_len // feat_t``, frames per level-0 step.
        prop_weight: weight of the level-0 terms (upstream's 0.1).
    """

    def __init__(self, *, clip_len: int, scale_factor: int, prop_weight: float = 0.1):
        super().__init__()
        self.clip_len = clip_len
        self.scale_factor = scale_factor
        self.prop_weight = prop_weight

    def forward(
        self,
        start: torch.Tensor,
        end: torch.Tensor,
        start_loc_prop: torch.Tensor,
        end_loc_prop: torch.Tensor,
        start_conf_prop: torch.Tensor,
        end_conf_prop: torch.Tensor,
        gt_segments: Sequence[torch.Tensor],
    ) -> Dict[str, torch.Tensor]:
        """Losses of the frame-level ``start``, ``end`` ``[B, clip_len, C]`` and the level-0
        features ``[B, T_0, C']``, with ``gt_segments`` per video ``[N, 2]`` normalised to ``[0, 1]``."""
        scores = start_end_targets(gt_segments, self.clip_len).to(start.device)
        loss_start, loss_end = tanh_bce(start, end, scores)
        level_scores = F.interpolate(scores, scale_factor=1.0 / self.scale_factor)
        start_loc, end_loc = tanh_bce(start_loc_prop, end_loc_prop, level_scores)
        start_conf, end_conf = tanh_bce(start_conf_prop, end_conf_prop, level_scores)
        return dict(
            loss_start=loss_start + self.prop_weight * (start_loc + start_conf),
            loss_end=loss_end + self.prop_weight * (end_loc + end_conf),
        )
