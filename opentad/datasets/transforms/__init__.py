"""Data pipeline transforms that read files, registered in :data:`opentad.registry.TRANSFORMS`.

* :mod:`.features`: :class:`LoadFeats`, :class:`Padding`, :class:`ResizeFeat`,
  :class:`ChannelReduction`.
* :mod:`.loading`: video file names, the video decoder (PyAV, also under
  upstream's ``mmaction.DecordInit``/``mmaction.DecordDecode``), feature
  windows; :mod:`.frame_sampling`: :class:`LoadFrames`.
* :mod:`.cached_frames`: :class:`LoadCachedFrames` (windows from the frame
  cache).

The tensor transforms both the pipelines and the models use (``Compose``,
``Collect``, the einops reshapes, the mmaction2 frame transforms, the batched
augmentation) live one layer down, in :mod:`opentad.transforms`.
"""
from .cached_frames import LoadCachedFrames
from .features import ChannelReduction, LoadFeats, Padding, ResizeFeat
from .frame_sampling import LoadFrames, LoadSnippetFrames
from .loading import PrepareVideoInfo, RandomTrunc, SlidingWindowTrunc, VideoDecode, VideoInit
from .truncation import TruncWindow, sample_trunc_window

__all__ = [
    "ChannelReduction",
    "LoadCachedFrames",
    "LoadFeats",
    "LoadFrames",
    "LoadSnippetFrames",
    "Padding",
    "PrepareVideoInfo",
    "RandomTrunc",
    "ResizeFeat",
    "SlidingWindowTrunc",
    "TruncWindow",
    "VideoDecode",
    "VideoInit",
    "sample_trunc_window",
]
