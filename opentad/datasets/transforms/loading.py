"""Loading videos, and cutting feature sequences to windows.

Video path: ``PrepareVideoInfo`` (file name) -> ``VideoInit`` (open, count
frames) -> ``LoadFrames`` (which frame indices; :mod:`.frame_sampling`) ->
``VideoDecode`` (decode them). ``VideoInit``/``VideoDecode`` are also
registered under upstream's names ``mmaction.DecordInit`` and
``mmaction.DecordDecode``; they are backed by PyAV
(:class:`~opentad.datasets.video_reader.VideoReader`), not decord (see ``docs/install.md``).

Feature path: ``LoadFeats`` (:mod:`.features`) -> ``ConvertToTensor`` ->
``RandomTrunc`` (train) or ``SlidingWindowTrunc`` (test).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from opentad.datasets.video_reader import VideoReader
from opentad.registry import TRANSFORMS
from opentad.transforms.formatting import require_key, to_tensor

from .truncation import sample_trunc_window

logger = logging.getLogger(__name__)

__all__ = ["PrepareVideoInfo", "VideoInit", "VideoDecode", "RandomTrunc", "SlidingWindowTrunc"]


@TRANSFORMS.register_module()
class PrepareVideoInfo:
    """Set ``filename`` = ``data_path/{prefix}{video_name}.{format}``.

    Reads ``data_path`` and ``video_name``; writes ``filename`` and ``modality``.

    Args:
        format: the file extension, without the dot.
        modality: stored as ``results["modality"]`` (``"RGB"``).
        prefix: prepended to the video name (``"v_"`` for ActivityNet).

    Raises:
        FileNotFoundError: the file does not exist (names the video and the path).
    """

    def __init__(self, *, format: str = "mp4", modality: str = "RGB", prefix: str = ""):
        self.format = format
        self.modality = modality
        self.prefix = prefix

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        require_key(results, "data_path", self)
        require_key(results, "video_name", self)
        path = os.path.join(results["data_path"], f"{self.prefix}{results['video_name']}.{self.format}")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Video {results['video_name']!r} not found: {path}")
        results["filename"] = path
        results["modality"] = self.modality
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(format={self.format!r}, modality={self.modality!r}, prefix={self.prefix!r})"


@TRANSFORMS.register_module(name=["VideoInit", "mmaction.DecordInit"])
class VideoInit:
    """Open ``filename`` with :class:`VideoReader`.

    Reads ``filename``; writes ``video_reader``, ``total_frames`` (int) and
    ``avg_fps`` (float).

    Args:
        num_threads: decoder threads (1: none; 0: FFmpeg's choice).

    Raises:
        FileNotFoundError: the file is missing.
        VideoReadError: the file is corrupt or not a video (names the file).
    """

    def __init__(self, *, num_threads: int = 1):
        self.num_threads = int(num_threads)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        require_key(results, "filename", self)
        reader = VideoReader(results["filename"], num_threads=self.num_threads)
        results["video_reader"] = reader
        results["total_frames"] = len(reader)
        results["avg_fps"] = reader.avg_fps
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_threads={self.num_threads})"


@TRANSFORMS.register_module(name=["VideoDecode", "mmaction.DecordDecode"])
class VideoDecode:
    """Decode the frames ``frame_inds`` from ``video_reader``, then close it.

    Reads ``video_reader`` and ``frame_inds`` (int array, squeezed to
    ``[T]``); writes ``imgs`` (``uint8`` tensor ``[T, 3, H, W]``, RGB, in
    the order of ``frame_inds``), ``original_shape`` and ``img_shape``
    (``(H, W)``), and sets ``video_reader`` to None.

    Args:
        mode: only ``"accurate"`` (exact frames), as upstream configs use.

    Raises:
        ValueError: another ``mode``.
        VideoReadError: decoding failed (names the file).
    """

    def __init__(self, *, mode: str = "accurate"):
        if mode != "accurate":
            raise ValueError(f"VideoDecode: mode={mode!r} is not supported; valid: ['accurate']")
        self.mode = mode

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        require_key(results, "video_reader", self)
        require_key(results, "frame_inds", self)
        reader: VideoReader = results["video_reader"]
        frame_inds = np.asarray(results["frame_inds"]).reshape(-1)
        results["frame_inds"] = frame_inds
        try:
            imgs = reader.get_batch(frame_inds)
        finally:
            reader.close()
            results["video_reader"] = None
        results["imgs"] = imgs
        results["original_shape"] = tuple(imgs.shape[-2:])
        results["img_shape"] = tuple(imgs.shape[-2:])
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mode={self.mode!r})"


@TRANSFORMS.register_module()
class SlidingWindowTrunc:
    """Cut the window ``[feature_start_idx, feature_end_idx]`` out of ``feats``.

    Reads ``feats`` (``[T, C]``), ``window_size``, ``feature_start_idx``,
    ``feature_end_idx`` (inclusive); writes ``feats`` as ``float32`` tensor
    ``[window_size, C]`` (zero rows past the video end) and, with
    ``with_mask``, ``masks`` (``BoolTensor [window_size]``, False on padding).

    Args:
        with_mask: also write ``masks``.
    """

    def __init__(self, *, with_mask: bool = True):
        self.with_mask = with_mask

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        for key in ("feats", "window_size", "feature_start_idx", "feature_end_idx"):
            require_key(results, key, self)
        feats = to_tensor(results["feats"]).float()
        window_size = int(results["window_size"])
        start = min(int(results["feature_start_idx"]), feats.shape[0])
        end = min(int(results["feature_end_idx"]) + 1, feats.shape[0])
        window = feats[start:end]
        valid = window.shape[0]
        if valid < window_size:
            window = torch.cat((window, window.new_zeros(window_size - valid, window.shape[1])), dim=0)
        if self.with_mask:
            results["masks"] = torch.arange(window_size) < valid
        results["feats"] = window
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(with_mask={self.with_mask})"


@TRANSFORMS.register_module()
class RandomTrunc:
    """Crop a random window of ``trunc_len`` steps that keeps enough of an action.

    Reads ``feats`` (``[T, C]``, or ``[C, T]`` with ``channel_first``),
    ``gt_segments`` (``[K, 2]`` in feature steps) and ``gt_labels`` (``[K]``);
    writes ``feats`` (``float32`` tensor, ``max(trunc_len, cropped T)``
    steps, padded with ``pad_value``), ``masks`` (``BoolTensor``, False on
    padding), and the kept ``gt_segments`` (clipped to the window, shifted
    to start at 0) and ``gt_labels`` as tensors. The window is drawn as in
    :func:`~.truncation.sample_trunc_window`.

    Args:
        trunc_len: window length in feature steps.
        trunc_thresh: keep a segment if at least this fraction of it is inside.
        crop_ratio: ``[lo, hi]``: a video not longer than ``trunc_len`` is
            cropped to a random ``round(lo*T)..round(hi*T)`` steps; None keeps it whole.
        max_num_trials: draws before giving up looking for a window with an action.
        has_action: require a window with at least one kept segment.
        no_trunc: also require that no segment is cut partially.
        pad_value: value of padded steps.
        channel_first: ``feats`` is ``[C, T]``.
    """

    def __init__(
        self,
        *,
        trunc_len: int,
        trunc_thresh: float,
        crop_ratio: Optional[Sequence[float]] = None,
        max_num_trials: int = 200,
        has_action: bool = True,
        no_trunc: bool = False,
        pad_value: float = 0.0,
        channel_first: bool = False,
    ):
        self.trunc_len = int(trunc_len)
        self.trunc_thresh = float(trunc_thresh)
        self.crop_ratio = None if crop_ratio is None else (float(crop_ratio[0]), float(crop_ratio[1]))
        self.max_num_trials = int(max_num_trials)
        self.has_action = has_action
        self.no_trunc = no_trunc
        self.pad_value = pad_value
        self.channel_first = channel_first

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        for key in ("feats", "gt_segments", "gt_labels"):
            require_key(results, key, self)
        feats = to_tensor(results["feats"]).float()
        feats = feats.t() if self.channel_first else feats  # [T, C]
        segments = to_tensor(results["gt_segments"]).float()
        labels = to_tensor(results["gt_labels"])
        window = sample_trunc_window(
            feats.shape[0],
            trunc_len=self.trunc_len,
            trunc_thresh=self.trunc_thresh,
            gt_segments=segments.numpy(),
            crop_ratio=self.crop_ratio,
            max_num_trials=self.max_num_trials,
            has_action=self.has_action,
            no_trunc=self.no_trunc,
        )
        if window is not None:
            feats = feats[window.start : window.end]
            segments = torch.from_numpy(window.gt_segments)
            labels = labels[torch.from_numpy(window.keep)]
        valid = feats.shape[0]
        if valid < self.trunc_len:
            pad = feats.new_full((self.trunc_len - valid, feats.shape[1]), float(self.pad_value))
            feats = torch.cat((feats, pad), dim=0)
        results["masks"] = torch.arange(feats.shape[0]) < valid
        results["feats"] = feats.t() if self.channel_first else feats
        results["gt_segments"] = segments
        results["gt_labels"] = labels
        return results

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(trunc_len={self.trunc_len}, trunc_thresh={self.trunc_thresh}, "
            f"crop_ratio={self.crop_ratio}, max_num_trials={self.max_num_trials}, has_action={self.has_action}, "
            f"no_trunc={self.no_trunc}, pad_value={self.pad_value}, channel_first={self.channel_first})"
        )
