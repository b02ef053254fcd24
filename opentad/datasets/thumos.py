"""THUMOS14 datasets (and any dataset in the same annotation layout, e.g. the synthetic one).

Each video of the annotation file carries ``subset``, ``duration``
(seconds), ``frame`` (number of frames) and ``annotations``: a list of
``{"label", "segment": [start_s, end_s]}``. Segments are turned into frames
as upstream OpenTAD does: ``int(t / duration * frame)`` (truncation), labels
``Ambiguous`` are skipped, and repeated (segment, label) pairs are kept once.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from opentad.registry import DATASETS

from .base import PaddingDataset, SlidingWindowDataset, filter_same_annotation

__all__ = ["ThumosPaddingDataset", "ThumosSlidingDataset"]


class _ThumosAnnotations:
    """Ground truth and frame rate of the THUMOS layout, shared by both THUMOS datasets."""

    ignored_labels = ("Ambiguous",)
    required_fields = ("duration", "frame")

    def get_gt(self, video_name: str, video_info: Mapping[str, Any]) -> Optional[Dict[str, np.ndarray]]:
        """``gt_segments`` float32 ``[K, 2]`` in frames and ``gt_labels`` int64 ``[K]``, or None if empty.

        Bad segments are skipped and counted (one warning per file, see
        :class:`~opentad.datasets.base.BaseDataset`); with ``filter_gt`` a
        segment shorter than one frame (after truncation to frames) is dropped.

        Raises:
            ValueError: a label is not in the class map.
        """
        duration = float(video_info["duration"])
        frames = video_info["frame"]
        segments: List[List[int]] = []
        labels: List[int] = []
        for anno in video_info.get("annotations", []):
            if anno.get("label") in self.ignored_labels:
                continue
            label = self.label_index(anno.get("label"), video_name)
            if not self.segment_is_valid(video_name, anno.get("segment"), duration):
                continue
            start = int(anno["segment"][0] / duration * frames)
            end = int(anno["segment"][1] / duration * frames)
            if self.filter_gt and end - start <= 0:
                continue
            segments.append([start, end])
            labels.append(label)
        if not segments:
            return None
        return filter_same_annotation(
            dict(gt_segments=np.array(segments, dtype=np.float32), gt_labels=np.array(labels, dtype=np.int64))
        )

    def video_fps(self, video_info: Mapping[str, Any]) -> float:
        """``frame / duration``: the frame rate the segments were converted with."""
        return video_info["frame"] / video_info["duration"]


@DATASETS.register_module()
class ThumosPaddingDataset(_ThumosAnnotations, PaddingDataset):
    """THUMOS14, one sample per video (keys: :class:`~opentad.datasets.base.PaddingDataset`)."""


@DATASETS.register_module()
class ThumosSlidingDataset(_ThumosAnnotations, SlidingWindowDataset):
    """THUMOS14, one sample per window (keys: :class:`~opentad.datasets.base.SlidingWindowDataset`)."""
