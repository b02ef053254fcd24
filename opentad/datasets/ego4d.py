"""Ego4D Moment Queries datasets: upstream OpenTAD's ``Ego4DPaddingDataset``, ``Ego4DSlidingDataset``, ``Ego4DResizeDataset``.

Each clip of the annotation file (``ego4d_v2_220429.json``, written by
``tools/prepare_data/ego4d/convert_ego4d_anno.py``) carries ``subset``
(``train`` / ``val`` / ``test``), ``duration`` (seconds), ``frame`` (frames of
the clip) and, outside ``test``, ``annotations``: ``{"label", "segment":
[start_s, end_s]}`` of the primary moments of every annotator (the same
moment may appear once per annotator; repeated (segment, label) pairs are
kept once).

Ground truth, as upstream:

* padding and sliding windows: frames ``int(t / duration * frame)``, the
  sample's ``fps`` is ``frame / duration`` -- the THUMOS arithmetic, without
  THUMOS' ``Ambiguous`` label (Ego4D has none: such a label is unknown);
* resize: seconds truncated to whole seconds, ``int(t)``; ``filter_gt``
  drops a segment unless ``int(end) - int(start) > 0``; segments reaching
  outside the clip are kept (the pipeline clips them), as for ActivityNet.

Bad input as for THUMOS / ActivityNet (docs/data.md, "Bad input").
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from opentad.registry import DATASETS

from .anet import AnetResizeDataset
from .thumos import ThumosPaddingDataset, ThumosSlidingDataset

__all__ = ["Ego4DPaddingDataset", "Ego4DSlidingDataset", "Ego4DResizeDataset"]


@DATASETS.register_module()
class Ego4DPaddingDataset(ThumosPaddingDataset):
    """Ego4D-MQ clips, one padded / cropped sample each (keys: :class:`~opentad.datasets.base.PaddingDataset`).

    Ground truth ``[K, 2]`` in snippets: ``(int(t / duration * frame) - offset_frames) / snippet_stride``.
    """

    ignored_labels: Tuple[str, ...] = ()


@DATASETS.register_module()
class Ego4DSlidingDataset(ThumosSlidingDataset):
    """Ego4D-MQ clips cut into windows (keys: :class:`~opentad.datasets.base.SlidingWindowDataset`).

    The window arithmetic is :class:`~opentad.datasets.base.SlidingWindowDataset`'s
    over ``frame`` snippet centres (``fps`` is not set by upstream's configs).
    """

    ignored_labels: Tuple[str, ...] = ()


@DATASETS.register_module()
class Ego4DResizeDataset(AnetResizeDataset):
    """Ego4D-MQ clips resized to ``resize_length`` steps (keys: :class:`~opentad.datasets.base.ResizeDataset`).

    Ground truth ``[K, 2]`` in whole seconds (``int(t)``, upstream's rule),
    which the pipeline resizes with ``duration``.
    """

    def segment_in_video(self, video_name: str, segment: Any, duration: float) -> Optional[Tuple[float, float]]:
        """The usable segment (see :class:`~opentad.datasets.anet.AnetResizeDataset`) truncated to whole seconds."""
        seconds = super().segment_in_video(video_name, segment, duration)
        return None if seconds is None else (float(int(seconds[0])), float(int(seconds[1])))

    def keep_gt(self, start: float, end: float, duration: float, scale: float) -> bool:
        """``filter_gt``: keep a segment of positive length (in whole seconds)."""
        return end - start > 0
