"""Ground-truth assignment of anchor-free points (ActionFormer / FCOS style)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["assign_points", "candidate_mask", "point_distances"]


@torch.no_grad()
def assign_points(
    points: torch.Tensor,
    gt_segments: torch.Tensor,
    gt_labels: torch.Tensor,
    *,
    num_classes: int,
    center_sample: Optional[str] = "radius",
    center_sample_radius: float = 1.5,
    filter_similar_gt: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Classification and regression targets of every point for one video.

    A point at position ``p`` with stride ``s`` is a candidate for segment
    ``[a, b]`` when

    * it lies inside the segment (strictly); with ``center_sample="radius"``
      it must moreover lie strictly inside
      ``[max(a, c - r s), min(b, c + r s)]``, ``c`` the centre and ``r`` the radius;
    * the longer of its distances ``p - a`` and ``b - p`` is within the level's
      regression range ``[r_min, r_max]`` (both ends included).

    Among its candidates a point regresses to the shortest segment. Its
    classes are those of the candidates no longer than that one plus 1e-3
    (``filter_similar_gt``) or of all candidates; several segments of one class
    still give 1.

    Args:
        points: ``[P, 4]`` rows ``(position, r_min, r_max, stride)``.
        gt_segments: ``[N, 2]`` ``(start, end)`` in input steps.
        gt_labels: ``[N]`` class indices.
        num_classes: ``C``.
        center_sample: ``"radius"`` or None.
        center_sample_radius: ``r`` in strides.
        filter_similar_gt: keep only the (near-)shortest candidates' classes.

    Returns:
        ``(cls_targets [P, C] in {0, 1}, reg_targets [P, 2])``: the distances
        ``(p - a, b - p) / s`` to the assigned segment (meaningless where the
        point has no class).

    Raises:
        ValueError: unknown ``center_sample``.
    """
    if center_sample not in ("radius", None):
        raise ValueError(f"center_sample must be 'radius' or None, got {center_sample!r}")
    num_pts, num_gts = points.shape[0], gt_segments.shape[0]
    if num_gts == 0:
        return points.new_zeros((num_pts, num_classes)), points.new_zeros((num_pts, 2))

    distances = point_distances(points, gt_segments)  # [P, N, 2]
    candidate, min_idx = candidate_mask(
        points,
        gt_segments,
        center_sample=center_sample,
        center_sample_radius=center_sample_radius,
        filter_similar_gt=filter_similar_gt,
    )
    stride = points[:, 3, None]

    one_hot = F.one_hot(gt_labels.long(), num_classes).to(distances.dtype)  # [N, C]
    cls_targets = (candidate.to(distances.dtype) @ one_hot).clamp_(0.0, 1.0)
    reg_targets = distances[torch.arange(num_pts, device=points.device), min_idx] / stride
    return cls_targets, reg_targets


def point_distances(points: torch.Tensor, gt_segments: torch.Tensor) -> torch.Tensor:
    """Distances ``(p - a, b - p)`` of every point to the boundaries of every segment.

    Args:
        points: ``[P, 4]`` rows ``(position, r_min, r_max, stride)``.
        gt_segments: ``[N, 2]`` ``(start, end)`` in input steps.

    Returns:
        ``[P, N, 2]`` in input steps (negative outside the segment).
    """
    position = points[:, 0, None]
    return torch.stack((position - gt_segments[None, :, 0], gt_segments[None, :, 1] - position), dim=-1)


@torch.no_grad()
def candidate_mask(
    points: torch.Tensor,
    gt_segments: torch.Tensor,
    *,
    center_sample: Optional[str] = "radius",
    center_sample_radius: float = 1.5,
    filter_similar_gt: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Which segments each point may be assigned to (the rules of :func:`assign_points`).

    Args:
        points: ``[P, 4]`` rows ``(position, r_min, r_max, stride)``.
        gt_segments: ``[N, 2]`` with ``N >= 1``.
        center_sample, center_sample_radius, filter_similar_gt: as in :func:`assign_points`.

    Returns:
        ``(candidate [P, N] bool, shortest [P] long)``: the candidate pairs and, per
        point, the index of its shortest candidate (the first segment if it has none).

    Raises:
        ValueError: unknown ``center_sample``.
    """
    if center_sample not in ("radius", None):
        raise ValueError(f"center_sample must be 'radius' or None, got {center_sample!r}")
    position, r_min, r_max, stride = (points[:, i, None] for i in range(4))  # [P, 1] each
    start, end = gt_segments[None, :, 0], gt_segments[None, :, 1]  # [1, N]
    distances = point_distances(points, gt_segments)
    if center_sample == "radius":
        centre = 0.5 * (start + end)
        left = torch.maximum(centre - stride * center_sample_radius, start)
        right = torch.minimum(centre + stride * center_sample_radius, end)
        inside = torch.minimum(position - left, right - position) > 0
    else:
        inside = distances.min(dim=-1).values > 0
    longest = distances.max(dim=-1).values
    in_range = (longest >= r_min) & (longest <= r_max)

    lengths = (end - start).expand(points.shape[0], gt_segments.shape[0])
    lengths = lengths.masked_fill(~(inside & in_range), float("inf"))
    min_len, min_idx = lengths.min(dim=1)  # [P]
    candidate = lengths < float("inf")
    if filter_similar_gt:
        candidate &= lengths <= min_len[:, None] + 1e-3
    return candidate, min_idx
