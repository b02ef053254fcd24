"""One sample per video: the pipeline pads short videos and randomly crops long ones (ActionFormer style)."""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping

import numpy as np

from .base_dataset import BaseDataset

__all__ = ["PaddingDataset"]


class PaddingDataset(BaseDataset):
    """Each video is one sample; cropping or padding to a fixed length is the pipeline's job.

    Takes the keys of :class:`BaseDataset`. The dict passed to the pipeline
    holds ``video_name``, ``data_path``, ``sample_stride``, ``snippet_stride``,
    ``fps``, ``duration``, ``offset_frames`` and, unless ``test_mode``,
    ``gt_segments`` (float32 ``[K, 2]``) and ``gt_labels`` (int64 ``[K]``).

    Ground truth is in snippet (feature) units of the whole video:
    ``(frame - offset_frames) / snippet_stride``.
    """

    def make_samples(
        self, video_name: str, video_info: Mapping[str, Any], video_anno: Dict[str, Any]
    ) -> List[tuple]:
        return [(video_name, video_info, video_anno)]

    def sample_dict(self, index: int) -> Dict[str, Any]:
        """The dict the pipeline receives for sample ``index`` (before any transform)."""
        video_name, video_info, video_anno = self.data_list[index]
        sample = dict(
            video_name=video_name,
            data_path=self.data_path,
            sample_stride=self.sample_stride,
            snippet_stride=self.snippet_stride,
            fps=self.video_fps(video_info),
            duration=video_info["duration"],
            offset_frames=self.offset_frames,
        )
        if video_anno:
            segments = (video_anno["gt_segments"] - self.offset_frames) / self.snippet_stride
            sample["gt_segments"] = segments.astype(np.float32)
            sample["gt_labels"] = copy.deepcopy(video_anno["gt_labels"])
        return sample

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.pipeline(self.sample_dict(index))
