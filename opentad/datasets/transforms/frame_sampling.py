"""Which frames of a video an end-to-end sample decodes: :class:`LoadFrames`, :class:`LoadSnippetFrames`."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from opentad.registry import TRANSFORMS
from opentad.transforms.formatting import require_key

from .truncation import sample_trunc_window

__all__ = ["LoadFrames", "LoadSnippetFrames"]

_METHODS = ("resize", "random_trunc", "sliding_window", "padding")


def _round_clip(positions: np.ndarray, total_frames: int) -> np.ndarray:
    """Frame indices: positions clipped to ``[0, total_frames - 1]`` and rounded (half to even)."""
    return np.round(np.clip(positions, 0, total_frames - 1)).astype(np.int64)


@TRANSFORMS.register_module()
class LoadFrames:
    """Choose the frame indices of a sample (decoding happens in ``VideoDecode``).

    A snippet (one step of the detector's sequence) covers ``snippet_stride``
    frames; the backbone sees ``scale_factor`` frames per snippet, i.e. one
    frame every ``snippet_stride // scale_factor`` frames. Methods:

    * ``"resize"``: ``resize_length * scale_factor`` frames evenly spread over
      the whole video (frame ``i`` at ``(i + 0.5) * total_frames / n - 0.5``);
      ``masks`` all-True ``[resize_length]``; ``gt_segments`` (seconds) become
      ``clip(gt / duration, 0, 1) * resize_length``.
    * ``"random_trunc"`` (training): frames ``0, s, 2s, ...`` (``s`` the
      frame stride); a window of ``trunc_len * scale_factor`` of them is
      drawn by :func:`~.truncation.sample_trunc_window` with ``gt_segments``
      (snippet units) scaled to frame-sample units and back; segments kept
      with ``trunc_thresh``, shifted to the window start. A short video is
      padded by repeating its last frame index; ``masks [trunc_len]`` is True
      on the first ``n_valid // scale_factor`` steps.
    * ``"sliding_window"`` (testing): the frames of snippets
      ``feature_start_idx..feature_end_idx`` (inclusive), padded the same way
      to ``window_size * scale_factor``; ``masks [window_size]``.
    * ``"padding"``: not implemented (as upstream).

    Indices are clipped to ``[0, total_frames - 1]`` and rounded.

    Reads ``total_frames``, and per method ``resize_length``/``duration``,
    ``snippet_stride``/``gt_segments``/``gt_labels``, or ``snippet_stride``/
    ``window_size``/``feature_start_idx``/``feature_end_idx``. Writes
    ``frame_inds`` (``int64 [n]``), ``num_clips``, ``clip_len``
    (``n // num_clips``), ``masks`` (``BoolTensor``) and, for resize and
    random_trunc, ``gt_segments`` (``float32 [K, 2]``) and ``gt_labels``.

    Args:
        num_clips: clips the frames are split into (``FormatShape``'s N).
        scale_factor: frames per snippet fed to the backbone.
        method: one of resize, random_trunc, sliding_window.
        trunc_len: window length in snippets (random_trunc).
        trunc_thresh: fraction of a segment that must stay inside (random_trunc).
        crop_ratio: ``[lo, hi]`` random crop of short videos (random_trunc).

    Raises:
        ValueError: unknown method, missing random_trunc settings, or a
            ``snippet_stride`` not divisible by ``scale_factor``.
        NotImplementedError: ``method="padding"``.
    """

    def __init__(
        self,
        *,
        num_clips: int = 1,
        scale_factor: int = 1,
        method: str = "resize",
        trunc_len: Optional[int] = None,
        trunc_thresh: Optional[float] = None,
        crop_ratio: Optional[Sequence[float]] = None,
    ):
        if method not in _METHODS:
            raise ValueError(f"LoadFrames: unknown method {method!r}; valid: {list(_METHODS)}")
        if method == "random_trunc" and (trunc_len is None or trunc_thresh is None):
            raise ValueError("LoadFrames: method='random_trunc' needs trunc_len and trunc_thresh")
        self.num_clips = int(num_clips)
        self.scale_factor = int(scale_factor)
        self.method = method
        self.trunc_len = trunc_len
        self.trunc_thresh = trunc_thresh
        self.crop_ratio = None if crop_ratio is None else (float(crop_ratio[0]), float(crop_ratio[1]))

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        positions, masks = self.sample_positions(results)
        frame_idxs = _round_clip(positions, int(results["total_frames"]))
        results["frame_inds"] = frame_idxs
        results["num_clips"] = self.num_clips
        results["clip_len"] = len(frame_idxs) // self.num_clips
        results["masks"] = masks
        return results

    def sample_positions(self, results: Dict[str, Any]) -> Tuple[np.ndarray, torch.Tensor]:
        """Frame positions (float, before rounding) and masks; updates the ground truth."""
        require_key(results, "total_frames", self)
        total_frames = int(results["total_frames"])
        if self.method == "resize":
            return self._resize(results, total_frames)
        if self.method == "random_trunc":
            return self._random_trunc(results, total_frames)
        if self.method == "sliding_window":
            return self._sliding_window(results, total_frames)
        valid = list(_METHODS[:3])
        raise NotImplementedError(f"{type(self).__name__}: method 'padding' is not implemented; use one of {valid}")

    def _frame_stride(self, results: Dict[str, Any]) -> int:
        require_key(results, "snippet_stride", self)
        stride = results["snippet_stride"]
        if stride < self.scale_factor or stride % self.scale_factor != 0:
            raise ValueError(
                f"LoadFrames: snippet_stride={stride} of {results.get('video_name')!r} must be a multiple of "
                f"scale_factor={self.scale_factor}"
            )
        return int(stride // self.scale_factor)

    def _resize(self, results: Dict[str, Any], total_frames: int) -> Tuple[np.ndarray, torch.Tensor]:
        require_key(results, "resize_length", self)
        resize_length = int(results["resize_length"])
        frame_num = resize_length * self.scale_factor
        stride = total_frames / frame_num
        frame_idxs = (np.arange(frame_num) + 0.5) * stride - 0.5
        if "gt_segments" in results:
            require_key(results, "duration", self)
            gt = np.asarray(results["gt_segments"], dtype=np.float32)
            results["gt_segments"] = np.clip(gt / results["duration"], 0.0, 1.0) * resize_length
        return frame_idxs, torch.ones(resize_length, dtype=torch.bool)

    def _random_trunc(self, results: Dict[str, Any], total_frames: int) -> Tuple[np.ndarray, torch.Tensor]:
        require_key(results, "gt_segments", self)
        require_key(results, "gt_labels", self)
        frame_num = self.trunc_len * self.scale_factor
        frame_idxs = np.arange(0, total_frames, self._frame_stride(results))
        gt = np.asarray(results["gt_segments"], dtype=np.float32).reshape(-1, 2)
        labels = np.asarray(results["gt_labels"])
        window = sample_trunc_window(
            len(frame_idxs),
            trunc_len=frame_num,
            trunc_thresh=self.trunc_thresh,
            gt_segments=gt * self.scale_factor,
            crop_ratio=self.crop_ratio,
        )
        if window is not None:
            frame_idxs = frame_idxs[window.start : window.end]
            gt = window.gt_segments / self.scale_factor
            labels = labels[window.keep]
        results["gt_segments"] = gt
        results["gt_labels"] = labels
        return self._pad(frame_idxs, frame_num, self.trunc_len)

    def _sliding_window(self, results: Dict[str, Any], total_frames: int) -> Tuple[np.ndarray, torch.Tensor]:
        for key in ("window_size", "feature_start_idx", "feature_end_idx"):
            require_key(results, key, self)
        window_size = int(results["window_size"])
        frame_idxs = np.arange(0, total_frames, self._frame_stride(results))
        start = min(int(results["feature_start_idx"]) * self.scale_factor, len(frame_idxs))
        end = min((int(results["feature_end_idx"]) + 1) * self.scale_factor, len(frame_idxs))
        return self._pad(frame_idxs[start:end], window_size * self.scale_factor, window_size)

    def _pad(self, frame_idxs: np.ndarray, frame_num: int, steps: int) -> Tuple[np.ndarray, torch.Tensor]:
        """Repeat the last index up to ``frame_num``; mask True on the valid steps."""
        if len(frame_idxs) >= frame_num:
            return frame_idxs, torch.ones(steps, dtype=torch.bool)
        valid = len(frame_idxs) // self.scale_factor
        frame_idxs = np.pad(frame_idxs, (0, frame_num - len(frame_idxs)), mode="edge")
        return frame_idxs, torch.arange(steps) < valid

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_clips={self.num_clips}, scale_factor={self.scale_factor}, "
            f"method={self.method!r}, trunc_len={self.trunc_len}, trunc_thresh={self.trunc_thresh}, "
            f"crop_ratio={self.crop_ratio})"
        )


@TRANSFORMS.register_module()
class LoadSnippetFrames(LoadFrames):
    """One clip of ``clip_len`` frames around each snippet (for snippet backbones).

    Snippet centres are chosen as :class:`LoadFrames` chooses frames with
    ``scale_factor=1`` (same methods, masks and ground-truth arithmetic);
    each centre ``c`` becomes the clip ``c + frame_interval * k`` for ``k`` in
    ``[-(clip_len // 2), clip_len // 2)``, then clipped and rounded. Writes
    ``frame_inds`` (``int64 [num_snippets, clip_len]``), ``num_clips =
    num_snippets``, ``clip_len``, ``masks`` (``BoolTensor [num_snippets]``).

    Args:
        clip_len: frames per snippet clip.
        frame_interval: gap between the frames of a clip.
        method, trunc_len, trunc_thresh, crop_ratio: as :class:`LoadFrames`.
    """

    def __init__(
        self,
        *,
        clip_len: int,
        frame_interval: int = 1,
        method: str = "resize",
        trunc_len: Optional[int] = None,
        trunc_thresh: Optional[float] = None,
        crop_ratio: Optional[Sequence[float]] = None,
    ):
        super().__init__(method=method, trunc_len=trunc_len, trunc_thresh=trunc_thresh, crop_ratio=crop_ratio)
        self.clip_len = int(clip_len)
        self.frame_interval = int(frame_interval)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        centres, masks = self.sample_positions(results)
        offsets = self.frame_interval * np.arange(-(self.clip_len // 2), self.clip_len // 2)
        results["frame_inds"] = _round_clip(centres[:, None] + offsets[None, :], int(results["total_frames"]))
        results["num_clips"] = len(centres)
        results["clip_len"] = self.clip_len
        results["masks"] = masks
        return results

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(clip_len={self.clip_len}, frame_interval={self.frame_interval}, "
            f"method={self.method!r}, trunc_len={self.trunc_len}, trunc_thresh={self.trunc_thresh}, "
            f"crop_ratio={self.crop_ratio})"
        )
