"""Pure-PyTorch 1D NMS and soft-NMS, the fallback of the compiled ``nms_1d_cpu`` op.

Both functions reproduce, operation for operation, the float32 arithmetic of
upstream OpenTAD's C++ kernels, so that the kept segments, their order and
their (decayed) scores are the same:

* lengths are ``x2 - x1 + 1e-6`` and the overlap of ``a`` with ``b`` is
  ``inter / (len_a + len_b - inter)`` with ``inter = max(0, min(a2, b2) - max(a1, b1))``;
* comparisons (``>=`` the IoU threshold, ``<`` the minimum score) are done in
  float32, so thresholds are rounded to float32 first;
* hard NMS visits segments in the order of ``torch.sort(scores, descending=True)``
  (ties in whatever order that sort gives);
* soft-NMS scans for the first strictly largest score at each step and drops a
  segment whose decayed score falls below ``min_score`` by moving the last
  remaining segment into its place, which decides how later ties are broken.
  The first segment it selects is never compared with ``min_score``.

The one known difference: the Gaussian weight ``exp(-ovr**2 / sigma)`` is
evaluated in float64 and rounded to float32, where the C++ kernel calls the C
library's ``expf``; both give the correctly rounded value except in rare cases
where they differ in the last bit of the decayed score.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch

__all__ = ["nms_1d_torch", "soft_nms_1d_torch", "SOFT_NMS_METHODS"]

#: soft-NMS decay methods, by the integer upstream configs use (``method=``).
SOFT_NMS_METHODS = {0: "hard", 1: "linear", 2: "gaussian", 3: "improved gaussian"}

_F32 = torch.float32


_MAX_SEGMENTS = 2**24  # indices ride along as float32, exact up to here


def _check_size(num: int) -> None:
    if num >= _MAX_SEGMENTS:
        raise ValueError(f"NMS fallback takes fewer than {_MAX_SEGMENTS} segments, got {num}")


def _f32(value: float) -> torch.Tensor:
    """A 0-dim float32 tensor: the value as a C++ ``float`` parameter holds it."""
    return torch.tensor(float(value), dtype=_F32)


def _overlap(ix1, ix2, iarea, x1, x2, areas) -> torch.Tensor:
    """IoU of one segment with many, as the C++ kernels compute it (NaN-faithful).

    ``std::max(a, b)`` is ``a < b ? b : a``; ``torch.where`` reproduces that
    even when a coordinate is NaN, where ``torch.maximum`` would not.
    """
    xx1 = torch.where(ix1 < x1, x1, ix1)
    xx2 = torch.where(x2 < ix2, x2, ix2)
    diff = xx2 - xx1
    inter = torch.where(diff > 0, diff, torch.zeros_like(diff))
    return inter / (iarea + areas - inter)


def nms_1d_torch(segs: torch.Tensor, scores: torch.Tensor, iou_threshold: float, max_num: int = 0) -> torch.Tensor:
    """Greedy hard NMS; the indices of the kept segments, highest score first.

    Args:
        segs: ``[N, 2]`` float32 (start, end).
        scores: ``[N]`` float32.
        iou_threshold: a later segment whose IoU with a kept one is
            ``>= iou_threshold`` is suppressed.
        max_num: stop after this many kept segments (0: keep all). The result
            equals the full result cut to ``max_num``.

    Returns:
        ``[K]`` int64 indices into ``segs``.

    Raises:
        ValueError: 2**24 segments or more.
    """
    num = segs.shape[0]
    if num == 0:
        return torch.empty(0, dtype=torch.long)
    _check_size(num)
    order = torch.sort(scores, dim=0, descending=True)[1]
    x1 = segs[:, 0].contiguous()
    x2 = segs[:, 1].contiguous()
    areas = x2 - x1 + 1e-6
    # rows: start, end, length, original index (exact in float32 below 2**24); by score
    state = torch.stack([x1, x2, areas, torch.arange(num, dtype=_F32)]).index_select(1, order)
    threshold = _f32(iou_threshold)
    kept = []
    while state.shape[1] > 0 and (max_num <= 0 or len(kept) < max_num):
        kept.append(state[3, 0])
        rest = state[:, 1:]
        if rest.shape[1] == 0:
            break
        ovr = _overlap(state[0, 0], state[1, 0], state[2, 0], rest[0], rest[1], rest[2])
        state = rest.index_select(1, torch.nonzero(~(ovr >= threshold)).squeeze(1))
    return torch.stack(kept).long()


def _first_max(scores: torch.Tensor) -> int:
    """Position of the first strictly largest score, NaN handled as ``a < b`` scans do.

    The scan keeps the first entry if it is NaN and otherwise never moves to a
    NaN; ``torch.max`` (first index of the maximum) agrees whenever no NaN is
    present, which is checked on its result.
    """
    value, index = torch.max(scores, 0)
    if not math.isnan(value.item()):
        return int(index)
    if torch.isnan(scores[0]):
        return 0
    masked = torch.where(torch.isnan(scores), torch.full_like(scores, float("-inf")), scores)
    return int(torch.argmax(masked))


def _compact(keep: torch.Tensor) -> torch.Tensor:
    """Positions after dropping ``~keep`` by moving the last survivor into each hole.

    Scanning left to right, a dropped entry is replaced by the current last
    entry (which is then examined in its place). The result: the first ``m``
    positions (``m`` survivors) keep their survivors, and their holes, left to
    right, receive the survivors beyond ``m``, right to left.
    """
    num_kept = int(keep.sum())
    order = torch.arange(num_kept)
    holes = torch.nonzero(~keep[:num_kept], as_tuple=True)[0]
    if holes.numel() > 0:
        movers = torch.nonzero(keep[num_kept:], as_tuple=True)[0] + num_kept
        order[holes] = movers.flip(0)
    return order


def _decay(ovr, iarea, method, threshold, sigma, t1, t2) -> torch.Tensor:
    """Soft-NMS weight for each overlap, in float32 (see :data:`SOFT_NMS_METHODS`)."""
    ones = torch.ones_like(ovr)
    if method == 0:
        return torch.where(ovr >= threshold, torch.zeros_like(ovr), ones)
    if method == 1:
        return torch.where(ovr >= threshold, 1 - ovr, ones)
    if method not in (2, 3):
        return ones
    gauss = torch.exp((-(ovr * ovr) / sigma).double()).to(_F32)
    if method == 2:
        return gauss
    return torch.where(ovr >= t1 + t2 * iarea, gauss, ones)


def soft_nms_1d_torch(
    segs: torch.Tensor,
    scores: torch.Tensor,
    *,
    iou_threshold: float,
    sigma: float,
    min_score: float,
    method: int,
    t1: float,
    t2: float,
    max_num: int = 0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Soft-NMS; the selected segments with their decayed scores, in selection order.

    Args:
        segs: ``[N, 2]`` float32 (start, end).
        scores: ``[N]`` float32; not modified.
        iou_threshold: overlap from which methods 0 and 1 decay a score.
        sigma: Gaussian width, weight ``exp(-iou**2 / sigma)`` (methods 2, 3).
        min_score: a decayed score below this drops the segment.
        method: 0 hard, 1 linear, 2 Gaussian, 3 improved Gaussian (decays
            only where ``iou >= t1 + t2 * length``); any other value never decays.
        t1, t2: method 3's threshold.
        max_num: stop after this many selections (0: select all).

    Returns:
        ``dets [K, 3]`` float32 (start, end, decayed score) and ``inds [K]``
        int64, the index in ``segs`` of each selected segment.

    Raises:
        ValueError: 2**24 segments or more.
    """
    num = segs.shape[0]
    _check_size(num)
    x1 = segs[:, 0].to(_F32)
    x2 = segs[:, 1].to(_F32)
    # rows: start, end, score, length, original index (exact in float32 below 2**24)
    state = torch.stack([x1, x2, scores.to(_F32), x2 - x1 + 1e-6, torch.arange(num, dtype=_F32)])
    threshold, sig, floor = _f32(iou_threshold), _f32(sigma), _f32(min_score)
    first_t, second_t = _f32(t1), _f32(t2)
    picked = []
    while state.shape[1] > 0 and (max_num <= 0 or len(picked) < max_num):
        best = _first_max(state[2])
        chosen = state[:, best].clone()
        picked.append(chosen)
        # swap: the first entry takes the chosen one's place, the chosen one leaves
        if best != 0:
            state[:, best] = state[:, 0]
        state = state[:, 1:]
        ovr = _overlap(chosen[0], chosen[1], chosen[3], state[0], state[1], state[3])
        state[2] *= _decay(ovr, chosen[3], method, threshold, sig, first_t, second_t)
        drop = state[2] < floor
        if bool(drop.any()):
            state = state.index_select(1, _compact(~drop))
    if not picked:
        return torch.zeros((0, 3), dtype=_F32), torch.empty(0, dtype=torch.long)
    chosen = torch.stack(picked)
    return chosen[:, :3].contiguous(), chosen[:, 4].long()
