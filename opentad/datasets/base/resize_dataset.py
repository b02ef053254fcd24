"""One sample per video, the whole video resized to a fixed number of steps (ActivityNet / HACS style).

The dataset does no arithmetic on time: ground truth stays in seconds and
the pipeline resizes both the input and the ground truth
(``ResizeFeat`` for features, ``LoadFrames(method="resize")`` /
``LoadSnippetFrames`` for frames: ``clip(gt / duration, 0, 1) *
resize_length``). Post-processing maps predictions back with
``segment / resize_length * duration`` because the sample's ``fps`` is -1
(``opentad/models/utils/post_processing/utils.py``).
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Sequence, Union

from opentad.registry import DATASETS

from .base_dataset import BaseDataset, _positive_int

__all__ = ["ResizeDataset"]


@DATASETS.register_module()
class ResizeDataset(BaseDataset):
    """Each video is one sample resized to ``resize_length`` steps; subclasses read the ground truth.

    The config keys are upstream's: those of :class:`BaseDataset` without
    ``feature_stride``, ``offset_frames`` and ``fps`` (a resized video has no
    snippet grid), plus ``resize_length``. The dict passed to the pipeline
    holds ``video_name``, ``data_path``, ``resize_length``,
    ``sample_stride``, ``fps`` (always -1: the resize setting),
    ``duration`` (float seconds) and, unless ``test_mode``, ``gt_segments``
    (float32 ``[K, 2]``, **seconds**) and ``gt_labels`` (int64 ``[K]``).

    Args:
        ann_file: annotation JSON in the OpenTAD layout (docs/data.md).
        subset_name: the subset to use, or a list of subsets.
        data_path: folder (or list of folders) of the features or videos.
        pipeline: transform configs or callables.
        class_map: class map file, one class per line (generated if missing).
        filter_gt: let the subclass drop short ground truth (ActivityNet:
            segments of at most 1 % of the video).
        class_agnostic: every label becomes class 0.
        block_list: None, a list of video names, or a file with one name per line.
        test_mode: no ground truth is read (inference).
        resize_length: steps of the resized video.
        sample_stride: keep one feature row every ``sample_stride`` before resizing.

    Raises:
        ValueError: ``resize_length`` or ``sample_stride`` is not a positive
            integer, or see "Bad input" of :mod:`.base_dataset`.
        NotImplementedError: ground truth is requested from this class itself
            (it has no :meth:`get_gt`; use e.g. ``AnetResizeDataset``).
    """

    def __init__(
        self,
        *,
        ann_file: str,
        subset_name: Union[str, Sequence[str]],
        data_path: Union[str, Sequence[str]],
        pipeline: Sequence[Any],
        class_map: str,
        filter_gt: bool = False,
        class_agnostic: bool = False,
        block_list: Union[None, str, Sequence[str]] = None,
        test_mode: bool = False,
        resize_length: int = 128,
        sample_stride: int = 1,
    ):
        self.resize_length = _positive_int("resize_length", resize_length, type(self).__name__)
        super().__init__(
            ann_file=ann_file,
            subset_name=subset_name,
            data_path=data_path,
            pipeline=pipeline,
            class_map=class_map,
            filter_gt=filter_gt,
            class_agnostic=class_agnostic,
            block_list=block_list,
            test_mode=test_mode,
            feature_stride=1,
            sample_stride=sample_stride,
        )

    def make_samples(
        self, video_name: str, video_info: Mapping[str, Any], video_anno: Dict[str, Any]
    ) -> List[tuple]:
        return [(video_name, video_info, video_anno)]

    def video_fps(self, video_info: Mapping[str, Any]) -> float:
        """-1: the resize setting (post-processing converts with ``resize_length`` and ``duration``)."""
        return -1

    def sample_dict(self, index: int) -> Dict[str, Any]:
        """The dict the pipeline receives for sample ``index`` (before any transform)."""
        video_name, video_info, video_anno = self.data_list[index]
        sample = dict(
            video_name=video_name,
            data_path=self.data_path,
            resize_length=self.resize_length,
            sample_stride=self.sample_stride,
            fps=self.video_fps(video_info),
            duration=float(video_info["duration"]),
        )
        if video_anno:
            sample["gt_segments"] = video_anno["gt_segments"].copy()
            sample["gt_labels"] = copy.deepcopy(video_anno["gt_labels"])
        return sample

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.pipeline(self.sample_dict(index))
