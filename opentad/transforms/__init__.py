"""Tensor transforms shared by the data pipelines and the models, registered in :data:`opentad.registry.TRANSFORMS`.

This package sits in the bottom layer (it imports only ``opentad.registry``
and third-party libraries), so the datasets and the backbone wrapper use it
without the model importing the data code.

* :mod:`.formatting`: :class:`Compose`, tensors, :class:`Collect`, einops
  reshapes (:class:`Rearrange`, :class:`Reduce`) and :class:`Interpolate`,
  which also run in the backbone wrapper's pre/post-processing pipelines.
* :mod:`.end_to_end`, :mod:`.crops` and :mod:`.photometric`: frame
  transforms with mmaction2's semantics (also under their ``mmaction.``
  names); :mod:`.frames` reads and stores the frames for them.
* :mod:`.batch_augment`: :class:`BatchClipAugment` (the training
  augmentation on batched clips, on the model's device), its crop, resize
  and flip in one gather in :mod:`.crop_resize`.

Frames travel as ``results["imgs"]``: a ``uint8`` tensor ``[T, 3, H, W]``
(RGB) until ``FormatShape`` makes it ``[N, 3, T, H, W]``. Random transforms
draw from torch's default generator (:mod:`.rng`).
"""
from .batch_augment import BatchClipAugment
from .crops import CenterCrop, RandomCrop, RandomResizedCrop
from .end_to_end import Flip, FormatShape, Resize
from .formatting import DEFAULT_META_KEYS, Collect, Compose, ConvertToTensor, Interpolate, Rearrange, Reduce, to_tensor
from .photometric import ColorJitter, ImgAug

__all__ = [
    "DEFAULT_META_KEYS",
    "BatchClipAugment",
    "CenterCrop",
    "Collect",
    "ColorJitter",
    "Compose",
    "ConvertToTensor",
    "Flip",
    "FormatShape",
    "ImgAug",
    "Interpolate",
    "RandomCrop",
    "RandomResizedCrop",
    "Rearrange",
    "Reduce",
    "Resize",
    "to_tensor",
]
