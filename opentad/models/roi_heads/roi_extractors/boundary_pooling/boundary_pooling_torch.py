"""Pure-PyTorch boundary max pooling, the fallback of the compiled ``boundary_pooling`` ops.

Semantics as in csrc/boundary_pooling: the first half of the channels pools
over each segment's start region ``segments[..., 0:2]``, the second half over
its end region ``segments[..., 2:4]``; bounds are truncated toward zero and
clamped to ``[0, T - 1]``; the window is ``[left, max(left, right)]``; the
first maximum wins ties and takes the gradient; a NaN is never the maximum
unless it sits at ``left``.

Window maxima come from a sparse table (maxima over power-of-two spans with
their first positions), so the cost is ``O(C T log T)`` rather than one pass
per window position.
"""

from __future__ import annotations

from typing import Tuple

import torch

__all__ = ["boundary_bounds", "window_argmax", "boundary_pooling_forward_torch", "boundary_pooling_backward_torch"]


def boundary_bounds(segments: torch.Tensor, channels: int, length: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel window ``left``, ``right`` [B, C, K] (int64, clamped, ``right >= left``).

    Args:
        segments: ``[B, K, 4]`` (start_left, start_right, end_left, end_right).
        channels: ``C`` (even); length: ``T``.
    """
    half = channels // 2

    def per_channel(columns):
        bound = segments[:, :, columns].detach().long().clamp(0, length - 1)  # [B, K, 2]
        return bound.permute(0, 2, 1).repeat_interleave(half, dim=1)  # [B, C, K]

    left = per_channel([0, 2])
    right = torch.maximum(per_channel([1, 3]), left)
    return left, right


def window_argmax(input: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Position of the first maximum of ``input[b, c, left:right + 1]`` for each window.

    Args:
        input: ``[B, C, T]``; left, right: ``[B, C, K]`` int64 with ``0 <= left <= right < T``.

    Returns:
        ``[B, C, K]`` int64 positions.
    """
    length = input.shape[2]
    values = torch.where(torch.isnan(input), torch.full_like(input, float("-inf")), input)
    where = torch.arange(length, device=input.device).expand_as(input)
    table_values, table_where = [values], [where]
    span = 1
    while 2 * span <= length:
        prev_v, prev_w = table_values[-1], table_where[-1]
        first_v, second_v = prev_v[..., : prev_v.shape[2] - span], prev_v[..., span:]
        take_second = second_v > first_v  # ties keep the first (earlier) position
        table_values.append(torch.where(take_second, second_v, first_v))
        table_where.append(torch.where(take_second, prev_w[..., span:], prev_w[..., : prev_w.shape[2] - span]))
        span *= 2
    sizes = right - left + 1
    level = torch.zeros_like(sizes)
    for k in range(1, len(table_values)):
        level += (sizes >= 2**k).long()
    first = torch.empty_like(left)
    second = torch.empty_like(left)
    first_v = input.new_empty(left.shape)
    second_v = input.new_empty(left.shape)
    for k, (tv, tw) in enumerate(zip(table_values, table_where)):
        sel = level == k
        if not bool(sel.any()):
            continue
        lo = torch.where(sel, left, torch.zeros_like(left))
        hi = torch.where(sel, right - 2**k + 1, torch.zeros_like(right))
        first = torch.where(sel, tw.gather(2, lo), first)
        second = torch.where(sel, tw.gather(2, hi), second)
        first_v = torch.where(sel, tv.gather(2, lo), first_v)
        second_v = torch.where(sel, tv.gather(2, hi), second_v)
    best = torch.where(second_v > first_v, second, first)
    return torch.where(torch.isnan(input.gather(2, left)), left, best)


def boundary_pooling_forward_torch(input: torch.Tensor, segments: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pooled ``[B, C, K]`` and the positions it was taken from (for the backward)."""
    left, right = boundary_bounds(segments, input.shape[1], input.shape[2])
    where = window_argmax(input, left, right)
    return input.gather(2, where), where


def boundary_pooling_backward_torch(grad_output: torch.Tensor, where: torch.Tensor, length: int) -> torch.Tensor:
    """Gradient ``[B, C, T]``: each output's gradient added at its maximum's position."""
    batch, channels, _ = grad_output.shape
    grad_input = grad_output.new_zeros(batch, channels, length)
    return grad_input.scatter_add_(2, where, grad_output)
