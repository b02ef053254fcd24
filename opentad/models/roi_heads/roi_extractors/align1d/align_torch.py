"""Pure-PyTorch 1D RoI align, the fallback of the compiled ``align1d`` ops.

Same arithmetic, in the same order, as csrc/align1d (which documents the
geometry): a roi ``(b, start, end)`` is widened to length >= 1 and cut into
``pooled_size`` bins of width ``bin``; bin ``p`` averages ``grid`` samples at
``(start + p * bin) + (i + 0.5) * bin / grid`` (``grid = sampling_ratio``, or
``ceil(bin)`` when ``sampling_ratio <= 0``), each linearly interpolated
between its two neighbours; a sample outside ``[-1, T]`` counts as 0.

Work is vectorised over rois and bins and looped over the sample index ``i``;
the backward recomputes the sample positions instead of storing them.
"""

from __future__ import annotations

from typing import Iterator, Tuple

import torch

__all__ = ["align1d_forward_torch", "align1d_backward_torch"]

Sample = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _samples(rois: torch.Tensor, pooled_size: int, sampling_ratio: int, length: int) -> Iterator[Sample]:
    """For each sample index: neighbours ``lo``, ``hi`` [N, P], weights, and validity [N, P]."""
    start, width = rois[:, 1], rois[:, 2] - rois[:, 1]
    width = torch.where(width > 1, width, torch.ones_like(width))
    bin_size = width / pooled_size
    if sampling_ratio > 0:
        grid = torch.full_like(bin_size, float(sampling_ratio))
    else:
        grid = torch.ceil(bin_size)
    positions = torch.arange(pooled_size, dtype=rois.dtype, device=rois.device)
    base = start[:, None] + positions[None, :] * bin_size[:, None]
    num_samples = int(grid.max().item()) if rois.shape[0] > 0 else 0
    for it in range(num_samples):
        t = base + (bin_size * (it + 0.5) / grid)[:, None]
        valid = ~((t < -1) | (t > length)) & (grid > it)[:, None]
        t = torch.where(t <= 0, torch.zeros_like(t), t)
        lo = t.clamp(max=length).long()  # truncation, t >= 0 here
        at_end = lo >= length - 1
        lo = torch.where(at_end, torch.full_like(lo, length - 1), lo)
        hi = torch.where(at_end, lo, lo + 1)
        t = torch.where(at_end, lo.to(t.dtype), t)
        w_hi = t - lo.to(t.dtype)
        yield lo.clamp(min=0), hi.clamp(min=0), 1 - w_hi, w_hi, valid


def _counts(rois: torch.Tensor, pooled_size: int, sampling_ratio: int) -> torch.Tensor:
    if sampling_ratio > 0:
        return torch.full_like(rois[:, 0], float(sampling_ratio))
    width = rois[:, 2] - rois[:, 1]
    width = torch.where(width > 1, width, torch.ones_like(width))
    return torch.ceil(width / pooled_size)


def _masked(weight: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return torch.where(valid, weight, torch.zeros_like(weight)).reshape(-1, 1)


def align1d_forward_torch(
    input: torch.Tensor, rois: torch.Tensor, pooled_size: int, sampling_ratio: int
) -> torch.Tensor:
    """1D RoI align forward.

    Samples outside the features get weight 0 (adding 0 is what skipping
    them does, as long as the features are finite; otherwise the masking is
    done on the values).

    Args:
        input: ``[B, C, T]`` features.
        rois: ``[N, 3]`` (batch index, start, end), same dtype as ``input``.
        pooled_size: bins per roi.
        sampling_ratio: samples per bin (``<= 0``: adaptive).

    Returns:
        ``[N, C, pooled_size]``.
    """
    rois = rois.detach()
    num_rois, channels, length = rois.shape[0], input.shape[1], input.shape[2]
    table = input.detach().transpose(1, 2).reshape(-1, channels)  # [B * T, C]: one row per position
    row = (rois[:, 0].long() * length)[:, None]
    finite = bool(torch.isfinite(input).all())
    acc = input.new_zeros(num_rois * pooled_size, channels)
    for lo, hi, w_lo, w_hi, valid in _samples(rois, pooled_size, sampling_ratio, length):
        v_lo = table.index_select(0, (row + lo).reshape(-1))
        v_hi = table.index_select(0, (row + hi).reshape(-1))
        if finite:
            acc += _masked(w_lo, valid) * v_lo + _masked(w_hi, valid) * v_hi
        else:
            val = w_lo.reshape(-1, 1) * v_lo + w_hi.reshape(-1, 1) * v_hi
            acc += torch.where(valid.reshape(-1, 1), val, torch.zeros_like(val))
    out = acc.view(num_rois, pooled_size, channels) / _counts(rois, pooled_size, sampling_ratio)[:, None, None]
    return out.permute(0, 2, 1).contiguous()


def align1d_backward_torch(
    grad_output: torch.Tensor,
    rois: torch.Tensor,
    pooled_size: int,
    input_shape: Tuple[int, int, int],
    sampling_ratio: int,
) -> torch.Tensor:
    """Gradient of :func:`align1d_forward_torch` with respect to ``input``.

    Args:
        grad_output: ``[N, C, pooled_size]``.
        rois: the forward's ``[N, 3]``.
        input_shape: ``(B, C, T)``.

    Returns:
        ``[B, C, T]``.
    """
    batch_size, channels, length = input_shape
    rois = rois.detach()
    grad = grad_output.permute(0, 2, 1).reshape(-1, channels)  # [N * P, C]
    count = _counts(rois, pooled_size, sampling_ratio).repeat_interleave(pooled_size)[:, None]
    row = (rois[:, 0].long() * length)[:, None]
    finite = bool(torch.isfinite(grad_output).all())
    flat = grad_output.new_zeros(batch_size * length, channels)
    for lo, hi, w_lo, w_hi, valid in _samples(rois, pooled_size, sampling_ratio, length):
        for index, weight in ((lo, w_lo), (hi, w_hi)):
            if finite:
                contrib = grad * _masked(weight, valid) / count
            else:
                contrib = grad * weight.reshape(-1, 1) / count
                contrib = torch.where(valid.reshape(-1, 1), contrib, torch.zeros_like(contrib))
            flat.index_add_(0, (row + index).reshape(-1), contrib)
    return flat.view(batch_size, length, channels).permute(0, 2, 1).contiguous()
