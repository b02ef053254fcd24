"""What inference and feature extraction share: video probing, input checks, devices.

Errors a user can cause with bad input derive from :class:`InferenceError`
(a ``ValueError``) and name the file or value at fault, so the command-line
tools can print one line instead of a stack trace.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Dict, List, Optional, Sequence

import torch

from opentad.datasets.video_reader import VideoReader, VideoReadError
from opentad.utils.checkpoint import CheckpointError

logger = logging.getLogger(__name__)

__all__ = [
    "InferenceError",
    "VideoTooShortError",
    "VideoInfo",
    "probe_video",
    "check_min_frames",
    "resolve_device",
    "unique_video_names",
    "USER_ERRORS",
]


class InferenceError(ValueError):
    """Bad input to inference or feature extraction (the message names the file or value)."""


class VideoTooShortError(InferenceError):
    """A video with fewer frames than one snippet."""


#: exception types the tools report as one line (no stack trace).
USER_ERRORS = (FileNotFoundError, VideoReadError, CheckpointError, ValueError)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What inference needs to know about a video file.

    Attributes:
        path: the file.
        name: the file name without folder and extension (the video's name in results).
        num_frames: decodable frames (the reader's frame index).
        fps: average frame rate of the video stream.
        duration: ``num_frames / fps`` seconds (so ``frame / duration`` is ``fps``,
            as the THUMOS annotation layout assumes).
        width, height: frame size in pixels.
    """

    path: str
    name: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int

    def to_dict(self) -> Dict[str, object]:
        return dataclasses.asdict(self)


def video_name(path: str) -> str:
    """``/a/b/clip.01.mp4 -> clip.01``."""
    return os.path.splitext(os.path.basename(path))[0]


def probe_video(path: str) -> VideoInfo:
    """Frame count, frame rate, duration and size of a video file (demuxing only, no decoding).

    Args:
        path: the video file (any container and codec FFmpeg reads).

    Raises:
        FileNotFoundError: no file at ``path``.
        VideoReadError: not a readable video, or no video frames (names the file).
        InferenceError: the stream reports no frame rate.
    """
    with VideoReader(path) as reader:
        num_frames, fps = len(reader), float(reader.avg_fps)
        width, height = reader.width, reader.height
    if not fps > 0:
        raise InferenceError(f"Video {path} reports no frame rate (avg_fps={fps}); re-encode it with a fixed rate")
    return VideoInfo(
        path=path, name=video_name(path), num_frames=num_frames, fps=fps, duration=num_frames / fps,
        width=width, height=height,
    )


def check_min_frames(info: VideoInfo, snippet_stride: float, *, what: str = "snippet") -> None:
    """Refuse a video shorter than one snippet of ``snippet_stride`` frames.

    Raises:
        VideoTooShortError: ``info.num_frames < snippet_stride`` (names the file and both numbers).
    """
    if info.num_frames < snippet_stride:
        raise VideoTooShortError(
            f"Video {info.path} has {info.num_frames} frame(s) ({info.duration:.3f} s), fewer than one {what} "
            f"of {snippet_stride:g} frames; nothing can be detected in it"
        )


def resolve_device(device: Optional[str]) -> torch.device:
    """``"cpu"``, ``"cuda"`` / ``"cuda:1"``, or None for CUDA when available, else the CPU.

    Raises:
        InferenceError: CUDA asked for but not available, or an unknown device string.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise InferenceError(f"Unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InferenceError(f"Device {device!r} asked for, but CUDA is not available here; use --device cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise InferenceError(f"Device {device!r} is not supported; use 'cpu', 'cuda' or 'cuda:N'")
    return resolved


def unique_video_names(paths: Sequence[str]) -> List[str]:
    """The names of ``paths`` (file stems), checked to be distinct.

    Raises:
        InferenceError: two files share a name (both named).
    """
    names: Dict[str, str] = {}
    for path in paths:
        name = video_name(path)
        if name in names:
            raise InferenceError(f"Videos {names[name]} and {path} have the same name {name!r}; rename one")
        names[name] = path
    return list(names)
