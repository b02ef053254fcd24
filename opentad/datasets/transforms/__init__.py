"""Data pipeline transforms, registered in :data:`opentad.registry.TRANSFORMS`.

* :mod:`.formatting`: :class:`Compose`, tensors, :class:`Collect`, einops
  reshapes, interpolation.
* :mod:`.features`: :class:`LoadFeats`, :class:`Padding`, :class:`ResizeFeat`,
  :class:`ChannelReduction`.
* :mod:`.loading`: video file names, the video decoder (PyAV, also under
  upstream's ``mmaction.DecordInit``/``mmaction.DecordDecode``), feature
  windows; :mod:`.frame_sampling`: :class:`LoadFrames`.
* :mod:`.end_to_end` and :mod:`.photometric`: frame transforms with
  mmaction2's semantics (also under their ``mmaction.`` names).
* :mod:`.cached_frames`: :class:`LoadCachedFrames` (windows from the frame
  cache); :mod:`.batch_augment`: :class:`BatchClipAugment` (the training
  augmentation on batched clips, on the model's device).

Frames travel as ``results["imgs"]``: a ``uint8`` tensor ``[T, 3, H, W]``
(RGB) until ``FormatShape`` makes it ``[N, 3, T, H, W]``. Random transforms
draw from torch's default generator (:mod:`.rng`).
"""
from .batch_augment import BatchClipAugment
from .cached_frames import LoadCachedFrames
from .end_to_end import CenterCrop, Flip, FormatShape, RandomCrop, RandomResizedCrop, Resize
from .features import ChannelReduction, LoadFeats, Padding, ResizeFeat
from .formatting import DEFAULT_META_KEYS, Collect, Compose, ConvertToTensor, Interpolate, Rearrange, Reduce, to_tensor
from .frame_sampling import LoadFrames, LoadSnippetFrames
from .loading import PrepareVideoInfo, RandomTrunc, SlidingWindowTrunc, VideoDecode, VideoInit
from .photometric import ColorJitter, ImgAug
from .truncation import TruncWindow, sample_trunc_window
from .video_reader import VideoReader, VideoReadError

__all__ = [
    "DEFAULT_META_KEYS",
    "BatchClipAugment",
    "CenterCrop",
    "ChannelReduction",
    "Collect",
    "ColorJitter",
    "Compose",
    "ConvertToTensor",
    "Flip",
    "FormatShape",
    "ImgAug",
    "Interpolate",
    "LoadCachedFrames",
    "LoadFeats",
    "LoadFrames",
    "LoadSnippetFrames",
    "Padding",
    "PrepareVideoInfo",
    "RandomCrop",
    "RandomResizedCrop",
    "RandomTrunc",
    "Rearrange",
    "Reduce",
    "Resize",
    "ResizeFeat",
    "SlidingWindowTrunc",
    "TruncWindow",
    "VideoDecode",
    "VideoInit",
    "VideoReadError",
    "VideoReader",
    "sample_trunc_window",
    "to_tensor",
]
