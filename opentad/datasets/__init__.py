"""Datasets, batching and data loaders; importing this package registers the datasets in ``DATASETS``.

The transforms that read files live in :mod:`opentad.datasets.transforms`,
the tensor transforms the models share one layer down in
:mod:`opentad.transforms`; both register in ``TRANSFORMS`` (imported on
first lookup through the registry).
"""
from .anet import AnetPaddingDataset, AnetResizeDataset, AnetSlidingDataset
from .base import PaddingDataset, ResizeDataset, SlidingWindowDataset, filter_same_annotation
from .builder import build_dataloader, build_dataset, collate
from .ego4d import Ego4DPaddingDataset, Ego4DResizeDataset, Ego4DSlidingDataset
from .epic_kitchens import EpicKitchensPaddingDataset, EpicKitchensSlidingDataset
from .thumos import ThumosPaddingDataset, ThumosSlidingDataset

__all__ = [
    "build_dataset",
    "build_dataloader",
    "collate",
    "PaddingDataset",
    "ResizeDataset",
    "SlidingWindowDataset",
    "filter_same_annotation",
    "ThumosPaddingDataset",
    "ThumosSlidingDataset",
    "AnetResizeDataset",
    "AnetPaddingDataset",
    "AnetSlidingDataset",
    "Ego4DPaddingDataset",
    "Ego4DResizeDataset",
    "Ego4DSlidingDataset",
    "EpicKitchensPaddingDataset",
    "EpicKitchensSlidingDataset",
]
