"""EPIC-Kitchens-100 datasets (upstream OpenTAD's ``EpicKitchensPaddingDataset``, ``EpicKitchensSlidingDataset``).

Upstream trains one detector per task, each on its own annotation file,
both written by ``tools/prepare_data/epic/convert_epic_kitchens_anno.py``:
``epic_kitchens_verb.json`` and ``epic_kitchens_noun.json``, whose
``label`` is the task's class id (``"id_012"``), with the class maps
``category_idx_verb.txt`` / ``category_idx_noun.txt``. EPIC-Sounds
(``epic_sounds.json``, ``label`` the sound class id) is read by the same
classes. A video carries ``subset`` (``train`` / ``val`` / ``test``),
``duration`` (seconds) and, outside ``test``, ``annotations``; there is no
``frame`` field: every video is taken at the config's ``fps`` (30).

Ground truth, as upstream: frames ``int(t * fps)``; ``filter_gt`` drops a
segment unless ``int(end * fps) - int(start * fps) > 0``; repeated
(segment, label) pairs are kept once; the sample's ``fps`` is the config's.

Bad input as for THUMOS (docs/data.md, "Bad input"): a segment with
``end <= start`` or outside ``[0, duration]`` is skipped and counted in one
warning per file, an unknown label is an error naming it. Here only: a
config without ``fps > 0`` is an error (upstream's default ``fps=-1``
silently turns every segment into negative frames).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from opentad.registry import DATASETS

from .base import PaddingDataset, SlidingWindowDataset, filter_same_annotation

__all__ = ["EpicKitchensPaddingDataset", "EpicKitchensSlidingDataset"]


class _EpicAnnotations:
    """Ground truth of the EPIC layout (segments in seconds, one frame rate for all videos)."""

    ignored_labels: Tuple[str, ...] = ()
    required_fields: Tuple[str, ...] = ("duration",)

    def _load(self, database: Mapping[str, Mapping[str, Any]]) -> None:
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or not self.fps > 0:
            raise ValueError(
                f"{type(self).__name__} needs fps > 0 (EPIC videos are read at one frame rate; upstream's "
                f"configs set fps=30), got fps={self.fps!r} for {self.ann_file}"
            )
        super()._load(database)

    def get_gt(self, video_name: str, video_info: Mapping[str, Any]) -> Optional[Dict[str, np.ndarray]]:
        """``gt_segments`` float32 ``[K, 2]`` in frames (``int(t * fps)``) and ``gt_labels`` int64 ``[K]``, or None.

        Raises:
            ValueError: a label is not in the class map.
        """
        duration = float(video_info["duration"])
        kept = []
        for anno in video_info.get("annotations", []):
            label = self.label_index(anno.get("label"), video_name)
            if self.segment_is_valid(video_name, anno.get("segment"), duration):
                kept.append((int(anno["segment"][0] * self.fps), int(anno["segment"][1] * self.fps), label))
        if self.filter_gt:
            kept = [item for item in kept if item[1] - item[0] > 0]
        if not kept:
            return None
        frames = np.array([item[:2] for item in kept], dtype=np.float32)
        labels = np.array([item[2] for item in kept], dtype=np.int64)
        return filter_same_annotation(dict(gt_segments=frames, gt_labels=labels))

    def video_fps(self, video_info: Mapping[str, Any]) -> float:
        """The config's ``fps``: the rate the segments were converted with."""
        return self.fps


@DATASETS.register_module()
class EpicKitchensPaddingDataset(_EpicAnnotations, PaddingDataset):
    """EPIC videos, one padded / cropped sample each (keys: :class:`~opentad.datasets.base.PaddingDataset`).

    Ground truth ``[K, 2]`` in snippets: ``(int(t * fps) - offset_frames) / snippet_stride``.
    """


@DATASETS.register_module()
class EpicKitchensSlidingDataset(_EpicAnnotations, SlidingWindowDataset):
    """EPIC videos cut into windows (keys: :class:`~opentad.datasets.base.SlidingWindowDataset`).

    Snippet centres run below ``int(duration * fps)`` frames.
    """
