"""Atomic file writing: mp4 (H.264 through PyAV), npy, text.

Every writer writes to ``<path>.partial-<pid>`` in the destination folder and
renames it onto ``path`` only when the file is complete, so an interrupted
run never leaves a truncated file under a final name.

The mp4 frames are the same for the same RGB input on every x86-64 CPU
(``docs/synthetic_data.md``, "Determinism"):

* RGB is converted to yuv420p here, with integer arithmetic
  (:func:`rgb_to_yuv420p`), not by FFmpeg's swscale, whose C and SIMD code
  paths round differently.
* x264 runs on one thread (no lookahead or slice threads) and with
  ``cpu-independent=1``: its C code instead of the SIMD routines that are not
  bit-exact (mb-tree propagation uses the approximate reciprocal instruction,
  and its AVX-512 version did not even repeat from one encode to the next;
  the SSSE3+ intra search decides differently from the C one). The output
  then is the same whatever instruction set x264 picks (tested by forcing its
  C code with ``x264_asm``).
"""
from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from typing import Dict, Iterable, Iterator, Optional

import numpy as np

__all__ = [
    "PARTIAL_MARK",
    "X264_PARAMS",
    "atomic_path",
    "encoder_options",
    "rgb_to_yuv420p",
    "write_mp4",
    "write_npy",
    "write_text",
]

PARTIAL_MARK = ".partial-"
# x264 settings that make its output independent of threads and CPU (module docstring).
X264_PARAMS: Dict[str, str] = {
    "threads": "1",
    "lookahead-threads": "1",
    "sliced-threads": "0",
    "sync-lookahead": "0",
    "cpu-independent": "1",
}

# BT.601, limited ("TV") range, as swscale's default for RGB -> yuv420p:
# Y = 16 + 219/255 (0.299 R + 0.587 G + 0.114 B), Cb / Cr = 128 + 224/255 * 0.5 (B - Y') / (1 - 0.114)
# and 0.5 (R - Y') / (1 - 0.299). Coefficients in 1/2^16 units; the middle one of each
# row is derived so that a row sums exactly (grey -> Cb = Cr = 128).
_SHIFT = 16
_KR, _KB = Fraction("0.299"), Fraction("0.114")
_KG = 1 - _KR - _KB


def _fixed(value: Fraction) -> int:
    return round(value * (1 << _SHIFT))


def _rows() -> tuple:
    luma, chroma = Fraction(219, 255), Fraction(224, 255)
    y_r, y_b = _fixed(luma * _KR), _fixed(luma * _KB)
    y_g = _fixed(luma) - y_r - y_b
    cb_r, cb_b = _fixed(-chroma * _KR / (2 * (1 - _KB))), _fixed(chroma / 2)
    cr_g, cr_b = _fixed(-chroma * _KG / (2 * (1 - _KR))), _fixed(-chroma * _KB / (2 * (1 - _KR)))
    return (y_r, y_g, y_b), (cb_r, -cb_r - cb_b, cb_b), (-cr_g - cr_b, cr_g, cr_b)


_Y_ROW, _CB_ROW, _CR_ROW = _rows()


def _pair_matrices() -> tuple:
    """Coefficients for a horizontal pair of pixels ``(r0, g0, b0, r1, g1, b1)``: the two lumas, and
    the pair's (Cb, Cr) sums."""
    luma = np.zeros((6, 2))
    luma[:3, 0] = luma[3:, 1] = _Y_ROW
    chroma = np.array([_CB_ROW + _CB_ROW, _CR_ROW + _CR_ROW], dtype=np.float64).T
    return luma, chroma


_PAIR_LUMA, _PAIR_CHROMA = _pair_matrices()
# offsets plus one half (round half up) in the units of each sum: Y sums 1 pixel, chroma 4
_Y_OFFSET, _CHROMA_OFFSET = (16 << _SHIFT) + (1 << (_SHIFT - 1)), (128 << (_SHIFT + 2)) + (1 << (_SHIFT + 1))


def rgb_to_yuv420p(image: np.ndarray) -> np.ndarray:
    """Convert an RGB frame to yuv420p (BT.601, limited range) with exact integer arithmetic.

    Luma per pixel; each chroma sample from the sum of a 2x2 block. Every
    intermediate value is an integer below 2^27, held in float64 (exact up to
    2^53), so the products and sums are exact whatever order or instructions
    NumPy and BLAS use: the bytes are the same on every machine.

    Args:
        image: uint8 [H, W, 3], H and W even.

    Returns:
        uint8 [H * 3 // 2, W]: the Y plane, then the U and V planes
        ([H / 2, W / 2] each) packed row after row (PyAV's yuv420p layout).

    Raises:
        ValueError: not uint8 [H, W, 3] with an even size.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.shape[0] % 2 or image.shape[1] % 2:
        raise ValueError(f"rgb_to_yuv420p needs uint8 [H, W, 3] with even H, W; got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    pairs = image.reshape(height, width // 2, 6).astype(np.float64)  # horizontal pixel pairs
    luma = (pairs @ _PAIR_LUMA + _Y_OFFSET) * (1.0 / (1 << _SHIFT))  # power-of-two scaling: exact
    sums = (pairs @ _PAIR_CHROMA).reshape(height // 2, 2, width)  # row pairs; Cb, Cr interleaved
    chroma = (sums[:, 0] + sums[:, 1] + _CHROMA_OFFSET) * (1.0 / (1 << (_SHIFT + 2)))
    pixels, quarter = height * width, height * width // 4
    out = np.empty(pixels + 2 * quarter, dtype=np.uint8)  # float -> uint8 truncates: floor of positive values
    out[:pixels] = luma.reshape(-1)
    out[pixels : pixels + quarter].reshape(height // 2, width // 2)[...] = chroma[:, 0::2]
    out[pixels + quarter :].reshape(height // 2, width // 2)[...] = chroma[:, 1::2]
    return out.reshape(height * 3 // 2, width)


def encoder_options(*, crf: int, preset: str, gop: int, x264_asm: Optional[str] = None) -> Dict[str, str]:
    """The libx264 options :func:`write_mp4` opens its encoder with.

    Args:
        crf, preset, gop: x264 quality, speed preset and keyframe interval.
        x264_asm: None lets x264 pick its instruction set; ``"0"`` forces its
            C code, a name such as ``"SSE2"`` or ``"AVX2"`` limits it (tests
            use this to show that the output does not depend on the CPU).
    """
    params = dict(X264_PARAMS)
    if x264_asm is not None:
        params["asm"] = x264_asm
    x264_params = ":".join(f"{key}={value}" for key, value in params.items())
    return {"crf": str(crf), "preset": preset, "g": str(gop), "threads": "1", "x264-params": x264_params}


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
    x264_asm: Optional[str] = None,
) -> int:
    """Encode RGB frames to an H.264 (yuv420p) mp4 at ``path`` atomically.

    Frames are converted by :func:`rgb_to_yuv420p` and encoded with
    :func:`encoder_options`, so the bytes depend only on the frames, these
    options and the FFmpeg / x264 build (not on the CPU or on threads).

    Args:
        path: destination ``.mp4``.
        frames: uint8 [H, W, 3] RGB arrays, all the same even size.
        fps: frame rate (constant).
        crf, preset, gop: x264 quality, speed preset and keyframe interval.
        x264_asm: see :func:`encoder_options` (tests only).

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
                    stream.options = encoder_options(crf=crf, preset=preset, gop=gop, x264_asm=x264_asm)
                elif image.shape[:2] != (stream.height, stream.width):
                    raise ValueError(
                        f"{path}: frame {count} is {image.shape[1]}x{image.shape[0]}, "
                        f"expected {stream.width}x{stream.height}"
                    )
                # already yuv420p at the stream's size: PyAV hands it to x264 unconverted
                frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(image), format="yuv420p")
                frame.pts = count
                container.mux(stream.encode(frame))
                count += 1
            if stream is None:
                raise ValueError(f"{path}: no frames to write")
            container.mux(stream.encode(None))
    return count
