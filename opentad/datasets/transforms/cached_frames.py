"""Reading sample windows from the frame cache: :class:`LoadCachedFrames`.

One transform stands in for ``PrepareVideoInfo`` -> ``mmaction.DecordInit``
-> ``LoadFrames`` -> ``mmaction.DecordDecode`` -> ``mmaction.Resize(scale=(-1,
short_side))``: it chooses the window exactly as :class:`~.frame_sampling.LoadFrames`
does (it *is* a ``LoadFrames``: same methods, same
:func:`~.truncation.sample_trunc_window` draws, same ground-truth and mask
arithmetic) and reads the frames from the cache built by
``tools/prepare_data/cache_frames.py`` (:mod:`opentad.datasets.frame_cache`)
instead of decoding the video.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from opentad.datasets.frame_cache.manifest import CacheError, check_entry, load_manifest
from opentad.datasets.frame_cache.shards import open_reader
from opentad.registry import TRANSFORMS
from opentad.transforms.formatting import require_key

from .frame_sampling import LoadFrames, _round_clip

__all__ = ["LoadCachedFrames"]

_CACHEABLE = ("random_trunc", "sliding_window")


@TRANSFORMS.register_module()
class LoadCachedFrames(LoadFrames):
    """Choose a window as :class:`LoadFrames` does and read its frames from the frame cache.

    ``random_trunc`` and ``sliding_window`` sample frames ``0, s, 2s, ...``
    (``s = snippet_stride // scale_factor``), which is what the cache holds
    when it was built with ``--stride s``; a cached frame ``k`` is video
    frame ``k * s``.

    Reads ``video_name``, ``data_path`` (the raw video folder, to detect a
    changed source) and what :class:`LoadFrames` reads except
    ``total_frames`` (from the manifest). Writes what ``LoadFrames`` +
    ``VideoDecode`` + ``Resize`` write: ``frame_inds``, ``num_clips``,
    ``clip_len``, ``masks``, the window's ``gt_segments``/``gt_labels``,
    ``total_frames``, ``avg_fps``, ``imgs`` (``uint8 [T, 3, H, W]`` at the
    cached resolution), ``original_shape`` (the video's) and ``img_shape``.

    Args:
        cache_dir: the cache folder (``<video_name>.json`` manifests).
        short_side: the resolution the config expects (checked against each
            manifest); None for frames cached at decoded size.
        format: extension of the source videos (as ``PrepareVideoInfo``).
        prefix: prepended to video names in source file names.
        check_source: compare each source video's size and modification
            time with the manifest; False trains from the cache alone.
        num_clips, scale_factor, method, trunc_len, trunc_thresh, crop_ratio:
            as :class:`LoadFrames` (method ``random_trunc`` or ``sliding_window``).

    Raises:
        ValueError: another method (``resize`` samples frames the cache does not hold).
        CacheError: (when called) the video's entry is missing, incomplete,
            stale, or cached at another stride or resolution; names the video.
        FileNotFoundError: ``check_source`` and the source video is missing.
    """

    def __init__(
        self,
        *,
        cache_dir: str,
        short_side: Optional[int] = 182,
        format: str = "mp4",
        prefix: str = "",
        check_source: bool = True,
        num_clips: int = 1,
        scale_factor: int = 1,
        method: str = "random_trunc",
        trunc_len: Optional[int] = None,
        trunc_thresh: Optional[float] = None,
        crop_ratio: Optional[Sequence[float]] = None,
    ):
        if method not in _CACHEABLE:
            raise ValueError(
                f"LoadCachedFrames: method {method!r} cannot read from the frame cache; valid: {list(_CACHEABLE)}"
            )
        super().__init__(
            num_clips=num_clips, scale_factor=scale_factor, method=method,
            trunc_len=trunc_len, trunc_thresh=trunc_thresh, crop_ratio=crop_ratio,
        )
        self.cache_dir = cache_dir
        self.short_side = short_side
        self.format = format
        self.prefix = prefix
        self.check_source = bool(check_source)
        self._entries: Dict[str, Tuple[Dict[str, Any], Any]] = {}  # video name -> (manifest, reader)

    def _entry(self, results: Dict[str, Any], stride: int) -> Tuple[Dict[str, Any], Any]:
        """The video's manifest and reader; checked on first use, the source checked on every call."""
        name = results["video_name"]
        source = None
        if self.check_source:
            require_key(results, "data_path", self)
            source = os.path.join(results["data_path"], f"{self.prefix}{name}.{self.format}")
        if name not in self._entries:
            manifest = load_manifest(self.cache_dir, name)
            check_entry(manifest, self.cache_dir, stride=stride, short_side=self.short_side, source_path=source)
            self._entries[name] = (manifest, open_reader(self.cache_dir, manifest))
        else:
            manifest = self._entries[name][0]
            check_entry(manifest, self.cache_dir, stride=stride, source_path=source)
        return self._entries[name]

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        require_key(results, "video_name", self)
        stride = self._frame_stride(results)
        manifest, reader = self._entry(results, stride)
        results["total_frames"] = int(manifest["total_frames"])
        results["avg_fps"] = float(manifest["fps"])
        positions, masks = self.sample_positions(results)
        frame_inds = _round_clip(positions, results["total_frames"])
        if np.any(frame_inds % stride):
            raise CacheError(
                f"LoadCachedFrames: video {results['video_name']!r} needs frames that are not multiples of the "
                f"cached stride {stride}"
            )
        imgs = reader.read(frame_inds // stride)
        results.update(
            frame_inds=frame_inds, num_clips=self.num_clips, clip_len=len(frame_inds) // self.num_clips, masks=masks,
            imgs=imgs, original_shape=(int(manifest["source_height"]), int(manifest["source_width"])),
            img_shape=(int(imgs.shape[-2]), int(imgs.shape[-1])),
        )
        return results

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_entries"] = {}  # memory maps and file handles are reopened in each worker
        return state

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(cache_dir={self.cache_dir!r}, short_side={self.short_side}, "
            f"check_source={self.check_source}, method={self.method!r}, trunc_len={self.trunc_len}, "
            f"trunc_thresh={self.trunc_thresh}, crop_ratio={self.crop_ratio}, scale_factor={self.scale_factor})"
        )
