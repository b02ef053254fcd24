"""Datasets, batching and data loaders; importing this package registers the datasets in ``DATASETS``.

The transforms that read files live in :mod:`opentad.datasets.transforms`,
the tensor transforms the models share one layer down in
:mod:`opentad.transforms`; both register in ``TRANSFORMS`` (imported on
first lookup through the registry).
"""
from .base import PaddingDataset, SlidingWindowDataset, filter_same_annotation
from .builder import build_dataloader, build_dataset, collate
from .thumos import ThumosPaddingDataset, ThumosSlidingDataset

__all__ = [
    "build_dataset",
    "build_dataloader",
    "collate",
    "PaddingDataset",
    "SlidingWindowDataset",
    "filter_same_annotation",
    "ThumosPaddingDataset",
    "ThumosSlidingDataset",
]
