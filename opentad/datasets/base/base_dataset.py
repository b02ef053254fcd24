"""What every temporal action detection dataset shares: annotations, class map, subsets, block list.

:class:`BaseDataset` reads the annotation file, the class map and the block
list, keeps the videos of the requested subset(s), asks the subclass for
each video's ground truth (:meth:`BaseDataset.get_gt`) and for the samples
the video gives (:meth:`BaseDataset.make_samples`: one per video when
padding, one per window when sliding), and runs the pipeline in
``__getitem__``.

Bad input
---------
* A segment with ``end <= start``, or outside ``[0, duration]`` seconds, is
  skipped; each dataset logs ONE warning per annotation file that counts
  them (with a few examples). ``Ambiguous`` (THUMOS) is not counted: it is
  skipped on purpose.
* A label missing from the class map raises ``ValueError`` naming the label,
  the video and the annotation file. In test mode too (the labels are all a
  test-mode dataset reads of the annotations): the evaluator would refuse
  them after inference (``opentad/evaluations/mAP.py``), and a training run
  builds its test dataset at start, so the error comes before the first epoch.
* A class map file that does not exist is generated from the annotations
  (all subsets, sorted, ignored labels left out) and the fact is logged.
* A subset with no video raises ``ValueError`` naming the subset and the
  file and listing the subsets present.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from opentad.transforms import Compose

from .util import load_annotation_database, load_class_map, read_block_list

logger = logging.getLogger(__name__)

__all__ = ["BaseDataset"]

#: how many bad segments the single warning quotes
_EXAMPLES_SHOWN = 3


def _positive_int(name: str, value: Any, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


class BaseDataset(torch.utils.data.Dataset):
    """Common base of :class:`PaddingDataset` and :class:`SlidingWindowDataset` (not registered).

    Args:
        ann_file: annotation JSON in the OpenTAD layout (docs/data.md).
        subset_name: the subset to use (``"training"``), or a list of subsets.
        data_path: folder of the features or videos (or a list of folders),
            passed to the pipeline as ``data_path``.
        pipeline: transform configs (built from ``TRANSFORMS``) or callables.
        class_map: class map file, one class per line (generated if missing).
        filter_gt: drop ground truth whose length in frames is 0.
        class_agnostic: every label becomes class 0.
        block_list: None, a list of video names, or a file with one name per line.
        test_mode: no ground truth is read (inference).
        feature_stride: frames between two consecutive features.
        sample_stride: keep one feature every ``sample_stride``.
        offset_frames: frame of the first feature's start.
        fps: if > 0, the frame rate used to count frames from the duration
            (sliding windows); otherwise the annotation's ``frame`` is used.

    Raises:
        FileNotFoundError: the annotation or block-list file does not exist.
        ValueError: see "Bad input" in the module docstring.
    """

    #: labels that are not classes and are skipped silently (THUMOS: ``("Ambiguous",)``).
    ignored_labels: Tuple[str, ...] = ()
    #: fields every used video must have (checked at construction, test mode included).
    required_fields: Tuple[str, ...] = ("duration",)

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
        feature_stride: int,
        sample_stride: int = 1,
        offset_frames: int = 0,
        fps: float = -1,
    ):
        super().__init__()
        name = type(self).__name__
        self.ann_file = ann_file
        self.subset_name = subset_name
        self.subsets = self._subset_tuple(subset_name)
        self.data_path = data_path
        self.filter_gt = bool(filter_gt)
        self.class_agnostic = bool(class_agnostic)
        self.block_list = block_list
        self.test_mode = bool(test_mode)
        self.feature_stride = _positive_int("feature_stride", feature_stride, name)
        self.sample_stride = _positive_int("sample_stride", sample_stride, name)
        self.snippet_stride = self.feature_stride * self.sample_stride
        self.offset_frames = int(offset_frames)
        self.fps = fps

        database = load_annotation_database(ann_file)
        self.class_map: List[str] = load_class_map(
            class_map, database, ann_file=ann_file, ignored_labels=self.ignored_labels
        )
        self._class_index = {label: i for i, label in enumerate(self.class_map)}
        self.pipeline = Compose(pipeline)
        self.data_list: List[tuple] = []
        self._bad_segments: List[Tuple[str, Any, Any]] = []
        self._load(database)

    # ------------------------------------------------------------------ loading
    @staticmethod
    def _subset_tuple(subset_name: Union[str, Sequence[str]]) -> Tuple[str, ...]:
        if isinstance(subset_name, str):
            return (subset_name,)
        if isinstance(subset_name, (list, tuple)) and subset_name and all(isinstance(s, str) for s in subset_name):
            return tuple(subset_name)
        raise TypeError(f"subset_name must be a string or a non-empty list of strings, got {subset_name!r}")

    def _load(self, database: Mapping[str, Mapping[str, Any]]) -> None:
        selected = [(name, info) for name, info in database.items() if info.get("subset") in self.subsets]
        if not selected:
            present = sorted({str(info.get("subset")) for info in database.values()})
            raise ValueError(
                f"No video of subset {list(self.subsets)} in {self.ann_file}; subsets present: {present}"
            )
        blocked = read_block_list(self.block_list)
        for video_name, video_info in selected:
            if video_name in blocked:
                continue
            self._check_fields(video_name, video_info)
            if self.test_mode:
                self._check_labels(video_name, video_info)
            video_anno: Dict[str, Any] = {} if self.test_mode else self.get_gt(video_name, video_info)
            if video_anno is None:  # no valid ground truth: the video is not used
                continue
            self.data_list.extend(self.make_samples(video_name, video_info, video_anno))
        self._warn_bad_segments()
        if not self.data_list:
            raise ValueError(
                f"Subset {list(self.subsets)} of {self.ann_file} gave no sample: {len(selected)} video(s), "
                f"{sum(name in blocked for name, _ in selected)} blocked, the others without valid ground truth (in a window)"
            )
        self.num_videos = len({sample[0] for sample in self.data_list})
        logger.info("%s", self.summary())

    def summary(self) -> str:
        """One line: subset, number of videos (and samples when they differ)."""
        return f"{type(self).__name__} {'+'.join(self.subsets)} subset: {self.num_videos} videos"

    def _warn_bad_segments(self) -> None:
        if not self._bad_segments:
            return
        examples = "; ".join(
            f"{video} segment={segment} duration={duration}"
            for video, segment, duration in self._bad_segments[:_EXAMPLES_SHOWN]
        )
        logger.warning(
            "%s: skipped %d segment(s) of subset %s with end <= start or outside [0, duration] (e.g. %s)",
            self.ann_file,
            len(self._bad_segments),
            list(self.subsets),
            examples,
        )

    def _check_fields(self, video_name: str, video_info: Mapping[str, Any]) -> None:
        missing = [key for key in self.required_fields if key not in video_info]
        if missing:
            raise ValueError(
                f"Video {video_name} in {self.ann_file} has no {missing} field(s) (fields: {sorted(video_info)})"
            )
        if not float(video_info["duration"]) > 0:
            raise ValueError(
                f"Video {video_name} in {self.ann_file} has duration {video_info['duration']!r}; it must be > 0"
            )

    def _check_labels(self, video_name: str, video_info: Mapping[str, Any]) -> None:
        """Test mode: every label of the video's annotations (``ignored_labels`` aside) is in the class map."""
        annotations = video_info["annotations"] if "annotations" in video_info else []
        for anno in annotations if isinstance(annotations, (list, tuple)) else []:
            label = anno["label"] if isinstance(anno, Mapping) and "label" in anno else None
            if label is not None and label not in self.ignored_labels:
                self.label_index(label, video_name)

    # ---------------------------------------------------- helpers for get_gt
    def video_field(self, video_name: str, video_info: Mapping[str, Any], key: str) -> Any:
        """``video_info[key]``, or a ValueError naming the key, the video and the annotation file."""
        if key not in video_info:
            raise ValueError(
                f"Video {video_name} in {self.ann_file} has no {key!r} field (fields: {sorted(video_info)})"
            )
        return video_info[key]


    def label_index(self, label: str, video_name: str) -> int:
        """Class index of ``label`` (0 when ``class_agnostic``).

        Raises:
            ValueError: the label is not in the class map (names the label, video and file).
        """
        if label not in self._class_index:
            raise ValueError(
                f"Label {label!r} of video {video_name} in {self.ann_file} is not in the class map "
                f"({len(self.class_map)} classes: {self.class_map})"
            )
        return 0 if self.class_agnostic else self._class_index[label]

    def segment_is_valid(self, video_name: str, segment: Any, duration: float) -> bool:
        """True if ``0 <= start < end <= duration``; otherwise the segment is recorded for the warning."""
        try:
            start, end = float(segment[0]), float(segment[1])
            valid = len(segment) == 2 and 0.0 <= start < end <= float(duration)
        except (TypeError, ValueError, IndexError):
            valid = False
        if not valid:
            self._bad_segments.append((video_name, segment, duration))
        return valid

    # ------------------------------------------------------- subclass hooks
    def get_gt(self, video_name: str, video_info: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        """Ground truth of one video: ``gt_segments`` float32 ``[K, 2]`` in frames, ``gt_labels`` int64 ``[K]``.

        Returns None when the video has no valid ground truth (it is then not used).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement get_gt")

    def make_samples(
        self, video_name: str, video_info: Mapping[str, Any], video_anno: Dict[str, Any]
    ) -> List[tuple]:
        """The entries of ``data_list`` one video gives (``video_anno`` is ``{}`` in test mode)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_samples")

    def video_fps(self, video_info: Mapping[str, Any]) -> float:
        """Frame rate put in the sample as ``fps``."""
        raise NotImplementedError(f"{type(self).__name__} must implement video_fps")

    # ------------------------------------------------------------- dataset
    def __len__(self) -> int:
        return len(self.data_list)
