"""Drawing a random training window over a sequence with ground-truth segments.

Shared by :class:`~.loading.RandomTrunc` (feature steps) and
:class:`~.frame_sampling.LoadFrames` (sampled frames); the arithmetic is
upstream OpenTAD's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from opentad.transforms import rng

__all__ = ["TruncWindow", "sample_trunc_window"]


@dataclass
class TruncWindow:
    """A window ``[start, end)`` and the ground truth it keeps.

    Attributes:
        start, end: the window, in sequence steps.
        keep: ``bool [K]``, which input segments are kept.
        gt_segments: ``float32 [K', 2]``, the kept segments clipped to the
            window and shifted so that the window starts at 0.
    """

    start: int
    end: int
    keep: np.ndarray
    gt_segments: np.ndarray


def sample_trunc_window(
    length: int,
    *,
    trunc_len: int,
    trunc_thresh: float,
    gt_segments: np.ndarray,
    crop_ratio: Optional[Sequence[float]] = None,
    max_num_trials: int = 200,
    has_action: bool = True,
    no_trunc: bool = False,
    offset: float = 0.0,
) -> Optional[TruncWindow]:
    """Draw a random window of a sequence of ``length`` steps.

    If ``length <= trunc_len``: without ``crop_ratio`` the sequence is kept
    whole (returns None); with it, the window length is drawn uniformly from
    ``[max(round(lo*length), 1), min(round(hi*length), length)]`` (None again
    if that equals ``length``). The start is drawn uniformly from
    ``[0, length - window]`` up to ``max_num_trials`` times, until the window
    keeps at least one segment (``has_action``), and additionally cuts none
    partially (``no_trunc``); without either constraint the first draw is
    taken. A segment is kept when ``|window ∩ segment| / |segment| >=
    trunc_thresh``. If no draw satisfies the constraint, the last one is used.

    Args:
        length: the sequence length ``T``.
        trunc_len: the window length.
        trunc_thresh: minimum fraction of a segment inside the window to keep it.
        gt_segments: ``[K, 2]`` segments (start, end) in steps.
        crop_ratio: ``(lo, hi)`` or None.
        max_num_trials: number of start draws (>= 1).
        has_action: see above.
        no_trunc: see above.
        offset: the window is widened by this much on each side when intersecting.

    Returns:
        A :class:`TruncWindow`, or None when the whole sequence is kept.

    Raises:
        ValueError: ``max_num_trials < 1`` or ``gt_segments`` is not ``[K, 2]``.
    """
    if max_num_trials < 1:
        raise ValueError(f"max_num_trials must be >= 1, got {max_num_trials}")
    segs = np.asarray(gt_segments, dtype=np.float32).reshape(-1, 2)
    window_len = int(trunc_len)
    if length <= window_len:
        if crop_ratio is None:
            return None
        window_len = rng.randint(max(round(crop_ratio[0] * length), 1), min(round(crop_ratio[1] * length), length))
        if window_len == length:
            return None
    area = np.abs(segs[:, 1] - segs[:, 0])
    for _ in range(max_num_trials):
        start = rng.randint(0, length - window_len)
        end = start + window_len
        left = np.maximum(np.float32(start - offset), segs[:, 0])
        right = np.minimum(np.float32(end + offset), segs[:, 1])
        inter = np.clip(right - left, 0, None)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = inter / area
        keep = ratio >= trunc_thresh
        if no_trunc:
            cut = (ratio > 0.0) & (ratio < 1.0)
            if keep.any() and not cut.any():
                break
        elif has_action:
            if keep.any():
                break
        else:
            break
    kept = np.stack((left[keep], right[keep]), axis=1).astype(np.float32) - np.float32(start)
    return TruncWindow(start=start, end=end, keep=keep, gt_segments=kept.reshape(-1, 2))
