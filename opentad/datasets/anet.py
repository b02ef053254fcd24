"""ActivityNet-1.3 datasets (and HACS-1.1.1 and FineAction, which upstream reads with the same classes).

Each video of the annotation file carries ``subset``, ``duration`` (seconds)
and ``annotations``: a list of ``{"label", "segment": [start_s, end_s]}``;
``frame`` is read only when a padding / sliding dataset has no ``fps``
(ActivityNet's own file has none: its configs set ``fps``). As upstream:

* ``AnetResizeDataset`` keeps segments in seconds (the pipeline resizes them);
  ``filter_gt`` drops segments of at most 1 % of the video.
* ``AnetPaddingDataset`` / ``AnetSlidingDataset`` turn seconds into frames
  with ``t * fps`` (no truncation; ``fps`` is the config's, or
  ``frame / duration``); ``filter_gt`` drops a segment unless
  ``end - start > 0``, ``end - offset_frames > 0`` and
  ``start - offset_frames <= duration * fps``.
* Repeated (segment, label) pairs are kept once; a video left without
  ground truth is not used for training.

Segments that extend past either end of the video are kept, as upstream
(YouTube videos' annotations can end after ``duration``); the resize
pipeline clips them. A segment with ``end <= start``, one entirely outside
``[0, duration]`` or not two numbers is skipped and counted in the one
warning per file of :class:`~opentad.datasets.base.BaseDataset`.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from opentad.registry import DATASETS

from .base import PaddingDataset, ResizeDataset, SlidingWindowDataset, filter_same_annotation
from .data_check import classify_segment

logger = logging.getLogger(__name__)

__all__ = ["AnetResizeDataset", "AnetPaddingDataset", "AnetSlidingDataset"]

#: ``AnetResizeDataset`` with ``filter_gt``: a segment must be longer than this fraction of the video.
RESIZE_MIN_SCALE = 0.01


class _AnetAnnotations:
    """Ground truth of the ActivityNet layout; subclasses choose the unit and the ``filter_gt`` rule."""

    def gt_scale(self, video_info: Mapping[str, Any]) -> float:
        """Multiplier from seconds to the ground truth's unit (1 for seconds, the frame rate for frames)."""
        raise NotImplementedError

    def keep_gt(self, start: float, end: float, duration: float, scale: float) -> bool:
        """The ``filter_gt`` rule on a segment ``[start, end]`` already in the ground truth's unit."""
        raise NotImplementedError

    def segment_in_video(self, video_name: str, segment: Any, duration: float) -> Optional[Tuple[float, float]]:
        """``(start, end)`` in seconds if the segment overlaps the video, else None (and it is counted).

        A segment reaching past ``0`` or ``duration`` is returned as it is and
        counted in ``self._clipped`` (logged once at INFO).
        """
        kind = classify_segment(segment, duration)
        if kind not in ("ok", "outside"):
            self._bad_segments.append((video_name, segment, duration))
            return None
        if kind == "outside":
            self._clipped = getattr(self, "_clipped", 0) + 1
        return float(segment[0]), float(segment[1])

    def get_gt(self, video_name: str, video_info: Mapping[str, Any]) -> Optional[Dict[str, np.ndarray]]:
        """``gt_segments`` float32 ``[K, 2]`` (unit: :meth:`gt_scale`) and ``gt_labels`` int64 ``[K]``, or None.

        Raises:
            ValueError: a label is not in the class map, or a needed field is missing.
        """
        duration = float(video_info["duration"])
        scale = self.gt_scale(video_info)
        segments: List[List[float]] = []
        labels: List[int] = []
        for anno in video_info.get("annotations", []):
            label = self.label_index(anno.get("label"), video_name)
            seconds = self.segment_in_video(video_name, anno.get("segment"), duration)
            if seconds is None:
                continue
            start, end = seconds[0] * scale, seconds[1] * scale
            if self.filter_gt and not self.keep_gt(start, end, duration, scale):
                continue
            segments.append([start, end])
            labels.append(label)
        if not segments:
            return None
        return filter_same_annotation(
            dict(gt_segments=np.array(segments, dtype=np.float32), gt_labels=np.array(labels, dtype=np.int64))
        )

    def _warn_bad_segments(self) -> None:
        clipped = getattr(self, "_clipped", 0)
        if clipped:
            logger.info(
                "%s: %d segment(s) of subset %s reach outside [0, duration]; kept (the pipeline clips them)",
                self.ann_file, clipped, list(self.subsets),
            )
        super()._warn_bad_segments()


class _AnetFrameAnnotations(_AnetAnnotations):
    """Ground truth in frames (padding and sliding windows)."""

    @property
    def required_fields(self) -> Tuple[str, ...]:
        """``frame`` is needed only when the config gives no ``fps``."""
        return ("duration",) if self.fps > 0 else ("duration", "frame")

    def gt_scale(self, video_info: Mapping[str, Any]) -> float:
        return self.video_fps(video_info)

    def keep_gt(self, start: float, end: float, duration: float, scale: float) -> bool:
        offset = self.offset_frames
        return end - start > 0 and end - offset > 0 and start - offset <= duration * scale

    def video_fps(self, video_info: Mapping[str, Any]) -> float:
        """The config's ``fps`` if > 0, else ``frame / duration`` (``frame`` is checked at construction)."""
        return float(self.fps) if self.fps > 0 else float(video_info["frame"]) / float(video_info["duration"])


@DATASETS.register_module()
class AnetResizeDataset(_AnetAnnotations, ResizeDataset):
    """ActivityNet-layout videos resized to ``resize_length`` steps.

    Keys: :class:`~opentad.datasets.base.ResizeDataset`.
    """

    def gt_scale(self, video_info: Mapping[str, Any]) -> float:
        return 1.0

    def keep_gt(self, start: float, end: float, duration: float, scale: float) -> bool:
        return (end - start) / duration > RESIZE_MIN_SCALE


@DATASETS.register_module()
class AnetPaddingDataset(_AnetFrameAnnotations, PaddingDataset):
    """ActivityNet-layout videos, one padded / cropped sample each.

    Keys: :class:`~opentad.datasets.base.PaddingDataset`.
    """


@DATASETS.register_module()
class AnetSlidingDataset(_AnetFrameAnnotations, SlidingWindowDataset):
    """ActivityNet-layout videos cut into windows.

    Keys: :class:`~opentad.datasets.base.SlidingWindowDataset`.
    """
