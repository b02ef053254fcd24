"""Videos cut into fixed-size, overlapping windows of snippets (G-TAD / BMN style, and sliding-window inference).

Window arithmetic (as upstream OpenTAD), with ``S = snippet_stride`` frames:

* snippet centres are frames ``0, S, 2S, ...`` below the number of frames
  (the annotation's ``frame``, or ``int(duration * fps)`` when ``fps > 0``);
  ``N`` is their count;
* ``window_stride = int(window_size * (1 - window_overlap_ratio))``;
* windows ``i = 0 .. max(1, N // window_stride) - 1`` cover snippets
  ``[i * window_stride, i * window_stride + window_size)``; the first window
  that would run past ``N`` is moved back to end at ``N`` (starting at
  ``max(0, N - window_size)``) and is the last one. Snippets past the last
  window are not covered when the loop ends before reaching ``N`` (upstream
  behaviour, kept);
* a window spans frames ``[first centre, last centre]``; with ground truth
  and ``ioa_thresh > 0``, each segment is truncated to that span and kept
  if ``truncated length / length > ioa_thresh``; a window without any kept
  segment is dropped. With ``ioa_thresh <= 0`` (or in test mode) every
  window is kept with the video's full ground truth.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from .base_dataset import BaseDataset

__all__ = ["SlidingWindowDataset", "compute_gt_completeness"]


def compute_gt_completeness(gt_segments: np.ndarray, window: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """How much of each segment lies inside ``window``, and the segments truncated to it.

    Args:
        gt_segments: ``[K, 2]`` start/end.
        window: ``(start, end)`` in the same unit.

    Returns:
        ``completeness`` ``[K]``: ``|segment ∩ window| / |segment|`` (0 for a
        segment that does not overlap the window; the length is floored at
        1e-6), and ``truncated`` ``[K, 2]``: each segment clipped to the window.
    """
    gt_segments = np.asarray(gt_segments, dtype=np.float64).reshape(-1, 2)
    start, end = float(window[0]), float(window[1])
    truncated = np.stack([np.maximum(gt_segments[:, 0], start), np.minimum(gt_segments[:, 1], end)], axis=1)
    overlaps = (gt_segments[:, 0] < end) & (gt_segments[:, 1] > start)
    lengths = np.maximum(gt_segments[:, 1] - gt_segments[:, 0], 1e-6)
    completeness = np.zeros(len(gt_segments))
    completeness[overlaps] = (truncated[overlaps, 1] - truncated[overlaps, 0]) / lengths[overlaps]
    return completeness, truncated


class SlidingWindowDataset(BaseDataset):
    """Each window of ``window_size`` snippets is one sample.

    Takes the keys of :class:`BaseDataset` (``**kwargs``) plus the three below. The dict
    passed to the pipeline holds ``video_name``, ``data_path``,
    ``window_size``, ``feature_start_idx`` / ``feature_end_idx`` (first and
    last snippet of the window, inclusive), ``sample_stride``, ``fps``,
    ``snippet_stride``, ``window_start_frame``, ``duration``,
    ``offset_frames`` and, unless ``test_mode``, ``gt_segments`` (float32
    ``[K, 2]``, snippet units relative to the window:
    ``(frame - window_start_frame - offset_frames) / snippet_stride``) and
    ``gt_labels`` (int64 ``[K]``).

    Args:
        window_size: snippets per window.
        window_overlap_ratio: overlap of two consecutive windows, in [0, 1).
        ioa_thresh: minimum fraction of a segment inside a window for it to
            count as ground truth of that window (strictly greater).

    Raises:
        ValueError: ``window_size`` is not positive, the window stride is 0,
            or a video has no frame.
    """

    def __init__(
        self,
        *,
        window_size: int,
        window_overlap_ratio: float = 0.25,
        ioa_thresh: float = 0.75,
        **kwargs: Any,
    ):
        name = type(self).__name__
        if isinstance(window_size, bool) or int(window_size) != window_size or window_size <= 0:
            raise ValueError(f"{name}: window_size must be a positive integer, got {window_size!r}")
        self.window_size = int(window_size)
        self.window_overlap_ratio = float(window_overlap_ratio)
        self.window_stride = int(window_size * (1 - window_overlap_ratio))
        if self.window_stride <= 0:
            raise ValueError(
                f"{name}: window_size={window_size} with window_overlap_ratio={window_overlap_ratio} "
                f"gives a window stride of {self.window_stride}; the ratio must be in [0, 1 - 1/window_size]"
            )
        self.ioa_thresh = float(ioa_thresh)
        super().__init__(**kwargs)

    def summary(self) -> str:
        return f"{super().summary()}, truncated as {len(self.data_list)} windows"

    def num_frames(self, video_name: str, video_info: Mapping[str, Any]) -> int:
        """Frames of the video: ``int(duration * fps)`` if ``fps > 0``, else the annotation's ``frame``."""
        if self.fps > 0:
            return int(self.video_field(video_name, video_info, "duration") * self.fps)
        return int(self.video_field(video_name, video_info, "frame"))

    def window_ranges(self, snippet_num: int) -> List[Tuple[int, int]]:
        """``[start, end)`` snippet indices of every window of a video with ``snippet_num`` snippets."""
        ranges = []
        for idx in range(max(1, snippet_num // self.window_stride)):
            start = idx * self.window_stride
            end = start + self.window_size
            last = end > snippet_num
            if last:
                end = snippet_num
                start = max(0, end - self.window_size)
            ranges.append((start, end))
            if last:
                break
        return ranges

    def make_samples(
        self, video_name: str, video_info: Mapping[str, Any], video_anno: Dict[str, Any]
    ) -> List[tuple]:
        snippet_centers = np.arange(0, self.num_frames(video_name, video_info), self.snippet_stride)
        if len(snippet_centers) == 0:
            raise ValueError(f"Video {video_name} in {self.ann_file} has no frame; cannot cut it into windows")
        samples = []
        for start, end in self.window_ranges(len(snippet_centers)):
            centers = snippet_centers[start:end]
            if not video_anno or self.ioa_thresh <= 0:
                samples.append((video_name, video_info, video_anno, centers))
                continue
            completeness, truncated = compute_gt_completeness(video_anno["gt_segments"], (centers[0], centers[-1]))
            kept = completeness > self.ioa_thresh
            if kept.any():
                window_anno = dict(
                    gt_segments=truncated[kept].astype(np.float32),
                    gt_labels=video_anno["gt_labels"][kept],
                )
                samples.append((video_name, video_info, window_anno, centers))
        return samples

    def sample_dict(self, index: int) -> Dict[str, Any]:
        """The dict the pipeline receives for window ``index`` (before any transform)."""
        video_name, video_info, video_anno, centers = self.data_list[index]
        window_start_frame = int(centers[0])
        sample = dict(
            video_name=video_name,
            data_path=self.data_path,
            window_size=self.window_size,
            feature_start_idx=int(centers[0] / self.snippet_stride),
            feature_end_idx=int(centers[-1] / self.snippet_stride),
            sample_stride=self.sample_stride,
            fps=self.video_fps(video_info),
            snippet_stride=self.snippet_stride,
            window_start_frame=window_start_frame,
            duration=video_info["duration"],
            offset_frames=self.offset_frames,
        )
        if video_anno:
            segments = (video_anno["gt_segments"] - window_start_frame - self.offset_frames) / self.snippet_stride
            sample["gt_segments"] = segments.astype(np.float32)
            sample["gt_labels"] = copy.deepcopy(video_anno["gt_labels"])
        return sample

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.pipeline(self.sample_dict(index))
