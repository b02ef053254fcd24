"""The two shard formats of the frame cache: raw uint8 (``npy``) and JPEG (``jpeg``).

* ``npy``: ``<video>.npy``, one ``uint8 [num_frames, 3, H, W]`` array (RGB,
  planar, as the pipeline holds frames). Reading a window is one contiguous
  slice of a memory map: exact and nearly free of CPU work, at
  ``3 * H * W`` bytes a frame.
* ``jpeg``: ``<video>.jpg.bin``, the frames' JPEG streams back to back, and
  ``<video>.jpg.idx.npy``, their byte offsets (``int64 [num_frames + 1]``).
  Reading a window is one read of the byte range its frames span, then one
  libjpeg-turbo decode per frame (OpenCV's ``imdecode``; torchvision's JPEG
  codec is deprecated from 0.29 and was 1.5-2x slower here); lossy, about a
  thirteenth of the size at quality 95.

Writers take frames ``uint8 [K, 3, H, W]`` in order and return ``{file
name: size in bytes}`` when closed; readers return frames at given indices.
"""
from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from .manifest import CacheError

__all__ = ["open_writer", "open_reader", "NpyWriter", "JpegWriter", "NpyReader", "JpegReader"]


class NpyWriter:
    """Write ``uint8 [num_frames, 3, H, W]`` to ``<cache_dir>/<video>.npy`` chunk by chunk."""

    def __init__(self, cache_dir: str, video_name: str, num_frames: int, size: Tuple[int, int]):
        self.file_name = f"{video_name}.npy"
        self.path = os.path.join(cache_dir, self.file_name)
        self.num_frames = int(num_frames)
        shape = (self.num_frames, 3, int(size[0]), int(size[1]))
        self._array = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.uint8, shape=shape)
        self._cursor = 0

    def write(self, frames: torch.Tensor) -> None:
        """Append ``uint8 [K, 3, H, W]`` frames."""
        end = self._cursor + frames.shape[0]
        self._array[self._cursor : end] = frames.numpy()
        self._cursor = end

    def close(self) -> Dict[str, int]:
        """Flush; returns ``{file name: bytes}``.

        Raises:
            RuntimeError: fewer or more frames were written than announced.
        """
        self._array.flush()
        del self._array
        if self._cursor != self.num_frames:
            raise RuntimeError(f"{self.path}: wrote {self._cursor} frames, expected {self.num_frames}")
        return {self.file_name: os.path.getsize(self.path)}


class JpegWriter:
    """Append JPEG-encoded frames to ``<video>.jpg.bin`` and their offsets to ``<video>.jpg.idx.npy``."""

    def __init__(self, cache_dir: str, video_name: str, num_frames: int, size: Tuple[int, int], quality: int):
        self.cache_dir = cache_dir
        self.bin_name, self.idx_name = f"{video_name}.jpg.bin", f"{video_name}.jpg.idx.npy"
        self.num_frames = int(num_frames)
        self.quality = int(quality)
        self._file = open(os.path.join(cache_dir, self.bin_name), "wb")
        self._offsets: List[int] = [0]

    def write(self, frames: torch.Tensor) -> None:
        """Encode and append ``uint8 [K, 3, H, W]`` RGB frames."""
        import cv2

        for frame in frames.permute(0, 2, 3, 1).numpy():
            bgr = np.ascontiguousarray(frame[..., ::-1])
            ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise RuntimeError(f"{self.bin_name}: OpenCV could not encode a frame as JPEG")
            self._file.write(data.tobytes())
            self._offsets.append(self._offsets[-1] + int(data.size))

    def close(self) -> Dict[str, int]:
        """Close the files; returns ``{file name: bytes}``.

        Raises:
            RuntimeError: fewer or more frames were written than announced.
        """
        self._file.close()
        if len(self._offsets) - 1 != self.num_frames:
            raise RuntimeError(f"{self.bin_name}: wrote {len(self._offsets) - 1} frames, expected {self.num_frames}")
        np.save(os.path.join(self.cache_dir, self.idx_name), np.asarray(self._offsets, dtype=np.int64))
        return {name: os.path.getsize(os.path.join(self.cache_dir, name)) for name in (self.bin_name, self.idx_name)}


def open_writer(fmt: str, cache_dir: str, video_name: str, num_frames: int, size: Tuple[int, int], quality: int):
    """A writer of format ``fmt`` (``"npy"`` or ``"jpeg"``).

    Raises:
        ValueError: an unknown format.
    """
    if fmt == "npy":
        return NpyWriter(cache_dir, video_name, num_frames, size)
    if fmt == "jpeg":
        return JpegWriter(cache_dir, video_name, num_frames, size, quality)
    raise ValueError(f"Unknown frame cache format {fmt!r}; valid: ['npy', 'jpeg']")


def _checked_indices(indices: Sequence[int], num_frames: int, video_name: str) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= num_frames):
        raise IndexError(
            f"Frame cache of video {video_name!r} holds {num_frames} frames; asked for indices "
            f"{int(idx.min())}..{int(idx.max())}"
        )
    return idx


class NpyReader:
    """Frames of an ``npy`` shard (memory-mapped on first use, so it opens lazily in each worker)."""

    def __init__(self, cache_dir: str, manifest: Dict):
        self.path = os.path.join(cache_dir, f"{manifest['video_name']}.npy")
        self.video_name = manifest["video_name"]
        self.num_frames = int(manifest["num_frames"])
        self._array = None

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        """``uint8 [len(indices), 3, H, W]`` in the order of ``indices`` (repeats allowed).

        Raises:
            IndexError: an index outside the cached frames (names the video).
        """
        idx = _checked_indices(indices, self.num_frames, self.video_name)
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        if idx.size and np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)):
            return torch.from_numpy(np.array(self._array[idx[0] : idx[0] + idx.size]))  # one contiguous copy
        return torch.from_numpy(np.take(self._array, idx, axis=0))


class JpegReader:
    """Frames of a ``jpeg`` shard: one read of the spanned bytes, one decode per distinct frame."""

    def __init__(self, cache_dir: str, manifest: Dict):
        name = manifest["video_name"]
        self.video_name = name
        self.bin_path = os.path.join(cache_dir, f"{name}.jpg.bin")
        self.idx_path = os.path.join(cache_dir, f"{name}.jpg.idx.npy")
        self.num_frames = int(manifest["num_frames"])
        self._offsets = None

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        """``uint8 [len(indices), 3, H, W]`` RGB in the order of ``indices``.

        Raises:
            IndexError: an index outside the cached frames (names the video).
            CacheError: a JPEG stream cannot be decoded (names the video and frame).
        """
        idx = _checked_indices(indices, self.num_frames, self.video_name)
        if self._offsets is None:
            self._offsets = np.load(self.idx_path)
        unique = np.unique(idx)
        lo, hi = int(self._offsets[unique[0]]), int(self._offsets[unique[-1] + 1])
        with open(self.bin_path, "rb") as f:
            f.seek(lo)
            data = np.frombuffer(f.read(hi - lo), dtype=np.uint8)
        frames = None
        for j, i in enumerate(unique):
            img = _decode_rgb(data[int(self._offsets[i]) - lo : int(self._offsets[i + 1]) - lo])
            if img is None:
                raise CacheError(
                    f"Frame cache of video {self.video_name!r}: frame {int(i)} of {self.bin_path} is not a JPEG"
                )
            if frames is None:
                frames = np.empty((len(unique),) + img.shape, dtype=np.uint8)  # [U, H, W, 3]
            frames[j] = img
        frames = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
        if unique.size == idx.size and np.array_equal(unique, idx):
            return frames
        return frames[torch.from_numpy(np.searchsorted(unique, idx))]


def _decode_rgb(stream: np.ndarray):
    """``uint8 [H, W, 3]`` RGB of one JPEG stream (OpenCV, one thread), or None if it does not decode."""
    import cv2

    if hasattr(cv2, "IMREAD_COLOR_RGB"):  # OpenCV >= 4.10 converts while decoding
        return cv2.imdecode(stream, cv2.IMREAD_COLOR_RGB)
    img = cv2.imdecode(stream, cv2.IMREAD_COLOR)
    return None if img is None else img[..., ::-1]


def open_reader(cache_dir: str, manifest: Dict):
    """The reader of a manifest's format.

    Raises:
        ValueError: an unknown format in the manifest.
    """
    if manifest["format"] == "npy":
        return NpyReader(cache_dir, manifest)
    if manifest["format"] == "jpeg":
        return JpegReader(cache_dir, manifest)
    raise ValueError(f"Frame cache of video {manifest['video_name']!r} has unknown format {manifest['format']!r}")
