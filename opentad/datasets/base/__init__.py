"""Dataset bases: how a video becomes samples.

* :class:`PaddingDataset`: one sample per video; the pipeline crops or pads
  it to a fixed length (ActionFormer / TriDet on THUMOS14).
* :class:`SlidingWindowDataset`: one sample per window of snippets (G-TAD /
  BMN training, sliding-window inference).
* :class:`ResizeDataset`: one sample per video, resized by the pipeline to a
  fixed number of steps (ActivityNet / HACS).

All derive from :class:`BaseDataset`, which reads the annotations, the class
map and the block list and selects the subset(s).
"""
from .base_dataset import BaseDataset
from .padding_dataset import PaddingDataset
from .resize_dataset import ResizeDataset
from .sliding_dataset import SlidingWindowDataset, compute_gt_completeness
from .util import (
    filter_same_annotation,
    generate_class_map,
    load_annotation_database,
    load_class_map,
    read_block_list,
)

__all__ = [
    "BaseDataset",
    "PaddingDataset",
    "ResizeDataset",
    "SlidingWindowDataset",
    "compute_gt_completeness",
    "filter_same_annotation",
    "generate_class_map",
    "load_annotation_database",
    "load_class_map",
    "read_block_list",
]
