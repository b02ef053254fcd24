"""Atomic file writing: mp4 (H.264 through PyAV), npy, text.

Every writer writes to ``<path>.partial-<pid>`` in the destination folder and
renames it onto ``path`` only when the file is complete, so an interrupted
run never leaves a truncated file under a final name.
"""
from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from typing import Iterable, Iterator

import numpy as np

__all__ = ["PARTIAL_MARK", "atomic_path", "write_mp4", "write_npy", "write_text"]

PARTIAL_MARK = ".partial-"


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and the exception re-raised.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}{PARTIAL_MARK}{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf8") as f:
        f.write(text)


def write_npy(path: str, array: np.ndarray) -> None:
    """Save ``array`` as ``.npy`` at ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


def write_mp4(
    path: str,
    frames: Iterable[np.ndarray],
    *,
    fps: int = 30,
    crf: int = 23,
    preset: str = "veryfast",
    gop: int = 60,
) -> int:
    """Encode RGB frames to an H.264 (yuv420p) mp4 at ``path`` atomically.

    The encoder runs single-threaded, so the bytes depend only on the frames,
    these options and the FFmpeg / x264 build.

    Args:
        path: destination ``.mp4``.
        frames: uint8 [H, W, 3] RGB arrays, all the same even size.
        fps: frame rate (constant).
        crf, preset, gop: x264 quality, speed preset and keyframe interval.

    Returns:
        The number of frames written.

    Raises:
        ValueError: a frame has an odd size, a different size than the first,
            or is not uint8 [H, W, 3]; or there are no frames.
    """
    import av  # imported here so that importing the package does not need PyAV

    count = 0
    with atomic_path(path) as tmp:
        with av.open(tmp, mode="w", format="mp4") as container:
            stream = None
            for image in frames:
                if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                    raise ValueError(f"{path}: frames must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
                if stream is None:
                    height, width = image.shape[:2]
                    if height % 2 or width % 2:
                        raise ValueError(f"{path}: H.264 yuv420p needs an even frame size, got {width}x{height}")
                    stream = container.add_stream("libx264", rate=Fraction(fps, 1))
                    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                    stream.codec_context.thread_count = 1
                    stream.options = {"crf": str(crf), "preset": preset, "g": str(gop), "threads": "1"}
                elif image.shape[:2] != (stream.height, stream.width):
                    raise ValueError(
                        f"{path}: frame {count} is {image.shape[1]}x{image.shape[0]}, "
                        f"expected {stream.width}x{stream.height}"
                    )
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = count
                container.mux(stream.encode(frame))
                count += 1
            if stream is None:
                raise ValueError(f"{path}: no frames to write")
            container.mux(stream.encode(None))
    return count
