"""IoU-type overlaps between 1D segments ``[start, end]``.

Two families:

* *aligned* functions compare ``a[..., i]`` with ``b[..., i]`` and broadcast
  like ordinary tensor arithmetic (used by the regression losses);
* the ``compute_*_torch`` functions keep upstream OpenTAD's names and argument
  order ``(gt_boxes [N, 2], anchors [M, 2]) -> [M, N]`` for every pair.
"""
from __future__ import annotations

import torch

__all__ = [
    "segment_iou_aligned",
    "segment_diou_aligned",
    "segment_giou_aligned",
    "compute_iou_torch",
    "compute_diou_torch",
    "compute_giou_torch",
    "compute_batched_iou_torch",
    "compute_ioa_torch",
]


def _overlap_terms(a: torch.Tensor, b: torch.Tensor):
    """Intersection, union and enclosing length of broadcastable segments."""
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
    enclosing = torch.maximum(a[..., 1], b[..., 1]) - torch.minimum(a[..., 0], b[..., 0])
    return inter, union, enclosing


def segment_iou_aligned(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """IoU of broadcastable segment tensors ``[..., 2]`` -> ``[...]``.

    The union is clamped to ``eps`` so that empty segments give 0, not NaN.
    """
    inter, union, _ = _overlap_terms(a, b)
    return inter / union.clamp(min=eps)


def segment_diou_aligned(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Distance-IoU: IoU minus (centre distance / enclosing length) squared.

    Args:
        a, b: broadcastable ``[..., 2]`` segments.
        eps: lower bound of the union and of the squared enclosing length.

    Returns:
        ``[...]`` values in ``[-1, 1]``.
    """
    inter, union, enclosing = _overlap_terms(a, b)
    iou = inter / union.clamp(min=eps)
    centre_dist = 0.5 * ((a[..., 0] + a[..., 1]) - (b[..., 0] + b[..., 1]))
    return iou - centre_dist.square() / enclosing.square().clamp(min=eps)


def segment_giou_aligned(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Generalised IoU: IoU minus the share of the enclosing segment not covered by the union."""
    inter, union, enclosing = _overlap_terms(a, b)
    iou = inter / union.clamp(min=eps)
    enclosing = enclosing.clamp(min=1e-7)
    return iou - (enclosing - union) / (enclosing + eps)


def _pairwise(fn, gt_boxes: torch.Tensor, anchors: torch.Tensor, **kwargs) -> torch.Tensor:
    return fn(anchors[:, None, :], gt_boxes[None, :, :], **kwargs).to(anchors.dtype)


def compute_iou_torch(gt_boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """IoU of every anchor ``[M, 2]`` with every ground truth ``[N, 2]`` -> ``[M, N]``."""
    return _pairwise(segment_iou_aligned, gt_boxes, anchors)


def compute_diou_torch(gt_boxes: torch.Tensor, anchors: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """DIoU of every anchor ``[M, 2]`` with every ground truth ``[N, 2]`` -> ``[M, N]``."""
    return _pairwise(segment_diou_aligned, gt_boxes, anchors, eps=eps)


def compute_giou_torch(gt_boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """GIoU of every anchor ``[M, 2]`` with every ground truth ``[N, 2]`` -> ``[M, N]``."""
    return _pairwise(segment_giou_aligned, gt_boxes, anchors)


def compute_batched_iou_torch(gt_boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """IoU of aligned pairs ``[B, N, 2]`` x ``[B, N, 2]`` -> ``[B, N]``."""
    return segment_iou_aligned(anchors, gt_boxes).to(anchors.dtype)


def compute_ioa_torch(gt_boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Intersection over anchor length of every anchor ``[M, 2]`` with every ground truth ``[N, 2]`` -> ``[M, N]``.

    The anchor length is clamped to ``1e-6`` as upstream (the targets of the
    temporal evaluation heads: startness, endness, actionness).
    """
    inter, _, _ = _overlap_terms(anchors[:, None, :], gt_boxes[None, :, :])
    return (inter / (anchors[:, 1] - anchors[:, 0]).clamp(min=1e-6)[:, None]).to(anchors.dtype)
