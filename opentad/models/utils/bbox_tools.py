"""Conversions between segment encodings.

A *point* is a row ``(position, min_range, max_range, stride)`` as made by
``PointGenerator``; a *distance* prediction is ``(left, right)`` in units of
the point's stride.
"""
from __future__ import annotations

import torch

__all__ = ["distance_to_segment", "segment_to_distance", "proposal_cw_to_se", "proposal_se_to_cw"]


def distance_to_segment(points: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """Decode stride-normalised ``(left, right)`` distances into ``[start, end]``.

    Args:
        points: ``[T, 4]`` rows ``(position, min_range, max_range, stride)``.
        distances: ``[..., T, 2]`` non-negative distances in strides.

    Returns:
        ``[..., T, 2]`` with ``start = position - left * stride`` and
        ``end = position + right * stride``.
    """
    position, stride = points[:, 0], points[:, 3]
    start = position - distances[..., 0] * stride
    end = position + distances[..., 1] * stride
    return torch.stack((start, end), dim=-1)


def segment_to_distance(points: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`distance_to_segment`: ``[..., T, 2]`` segments -> distances in strides."""
    position, stride = points[:, 0], points[:, 3]
    left = (position - segments[..., 0]) / stride
    right = (segments[..., 1] - position) / stride
    return torch.stack((left, right), dim=-1)


def proposal_cw_to_se(x: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` (centre, width) -> (start, end)."""
    centre, width = x.unbind(-1)
    return torch.stack((centre - 0.5 * width, centre + 0.5 * width), dim=-1)


def proposal_se_to_cw(x: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` (start, end) -> (centre, width)."""
    start, end = x.unbind(-1)
    return torch.stack(((start + end) * 0.5, end - start), dim=-1)
