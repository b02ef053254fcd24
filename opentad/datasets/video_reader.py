"""Frame-accurate random access into a video file with PyAV.

:class:`VideoReader` is what :class:`~opentad.datasets.transforms.loading.VideoInit`
opens and :class:`~opentad.datasets.transforms.loading.VideoDecode` reads
from. PyAV was chosen by measurement (``tools/benchmark_decode.py``,
``docs/benchmarks.md`` section "Video decoding", ``docs/install.md``).

How a batch of frame indices is read:

* On opening, the packets of the video stream are demuxed once (no decoding)
  to list every frame's presentation timestamp (pts) and which frames are
  keyframes. Frame ``i`` is the frame with the ``i``-th smallest pts, as in
  decord, so indices are exact also for variable frame rate files
  (:mod:`opentad.datasets.frame_index`).
* ``get_batch(indices)`` decodes forward through the sorted, unique indices.
  It seeks only when a keyframe lies strictly between the last decoded frame
  and the next wanted one (seeking then skips decoding work); otherwise it
  keeps decoding. Only wanted frames are converted to RGB, planar, straight
  into the output tensor.

Truncated files (with the index at the front of an mp4, ``faststart``, a
file cut short still opens and declares its full length): the file is read
as its decodable beginning, the same for inference, feature extraction and
the datasets. The last packet, when the demuxer marks it corrupt (cut off by
the end of the file), is neither indexed nor decoded. With B-frames, frames
decoded just before the cut can lie *after* frames that are lost, so only
frames whose pts is below the first lost packet's dts (a lower bound of every
lost frame's pts, since pts >= dts and dts grows in file order) are indexed:
the frames kept are exactly the first ``N`` of the complete video. The cut is
detected by the corrupt packet, or, when the cut falls between two packets,
by the declared duration exceeding the indexed one (then the bound is the
last packet's dts plus one). When the decodable length (frames / frame rate)
differs from the declared duration by more than two frames (they can
disagree by the first frame's start offset and the last frame's display time,
each under one frame), ONE warning per file and process names the file and
both durations.
"""
from __future__ import annotations

import bisect
import logging
import os
import threading
from typing import TYPE_CHECKING, Iterator, List, Optional, Sequence, Set

import numpy as np
import torch

from opentad.datasets.frame_index import FrameIndex, index_packets

if TYPE_CHECKING:  # PyAV is imported when a video is opened, not with the package
    import av

logger = logging.getLogger(__name__)

__all__ = ["VideoReader", "VideoReadError"]

#: ``(path, size, mtime)`` of files already warned about in this process (a dataset opens a video per sample)
_WARNED: Set[tuple] = set()
_WARNED_LOCK = threading.Lock()
#: frames of slack between the declared and the decodable duration (module docstring)
DURATION_SLACK_FRAMES = 2


def _av():
    import av

    return av


def _open(av, path: str):
    """``av.open(path)`` ignoring undecodable metadata where PyAV can (``metadata_errors``, removed in PyAV 19).

    Raises:
        TypeError: any other than the removed keyword's; PyAV's errors as ``av.open`` raises them.
    """
    try:
        return av.open(path, metadata_errors="ignore")
    except TypeError as exc:
        if "metadata_errors" not in str(exc):
            raise
        return av.open(path)


class VideoReadError(RuntimeError):
    """A video file that cannot be opened or decoded (the message names the file)."""


class VideoReader:
    """Open ``path`` and serve RGB frames by index.

    Args:
        path: the video file.
        num_threads: decoder threads; 1 decodes in the calling thread, 0 lets
            FFmpeg choose.

    Attributes:
        path: the file.
        avg_fps: average frame rate of the video stream (float).
        height, width: frame size in pixels.
        declared_duration: seconds the container declares for the video
            stream (else for the file), None when it declares none.
        dropped_frames: frames left out of the index because the file is cut
            short (the cut-off packet, and frames after the first lost one).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoReadError: the file is not a readable video or has no frames.
    """

    def __init__(self, path: str, *, num_threads: int = 1):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Video file not found: {path}")
        self.path = path
        self.num_threads = int(num_threads)
        av = _av()
        try:
            self._container = _open(av, path)
            if not self._container.streams.video:
                raise VideoReadError(f"{path} has no video stream")
            self._stream = self._container.streams.video[0]
            rate = self._stream.average_rate or self._stream.guessed_rate
            self.avg_fps = float(rate) if rate else 0.0
            self.declared_duration = self._declared_duration()
            self._build_index()
        except _av().error.FFmpegError as exc:
            self.close()
            raise VideoReadError(f"Cannot read video {path}: {exc}") from exc
        except VideoReadError:
            self.close()
            raise
        ctx = self._stream.codec_context
        ctx.thread_count = self.num_threads
        if self.num_threads != 1:
            ctx.thread_type = "AUTO"
        self.height = int(ctx.height)
        self.width = int(ctx.width)
        self._frames: Optional[Iterator["av.VideoFrame"]] = None
        self._pos = -1  # index of the last decoded frame
        self._check_duration()

    def _declared_duration(self) -> Optional[float]:
        """The video stream's duration in seconds, else the file's when the video is its only stream
        (Matroska declares no stream durations; a longer audio track would lengthen the file's), else None."""
        stream = self._stream
        if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
            return float(stream.duration * stream.time_base)
        duration = self._container.duration
        if duration is not None and duration > 0 and len(self._container.streams) == 1:
            return float(duration) / 1_000_000  # AV_TIME_BASE
        return None

    def _disagrees(self, num_frames: int, *, shorter_only: bool = False) -> bool:
        """Whether ``num_frames`` at ``avg_fps`` differs from (with ``shorter_only``: falls short of) the
        declared duration by more than the slack."""
        if self.declared_duration is None or not self.avg_fps > 0:
            return False
        gap = self.declared_duration - num_frames / self.avg_fps
        return (gap if shorter_only else abs(gap)) > DURATION_SLACK_FRAMES / self.avg_fps

    def _check_duration(self) -> None:
        """Warn (once per file and process) when the decodable length is not the declared one."""
        if not self._disagrees(len(self)):
            return
        decoded = len(self) / self.avg_fps
        stat = os.stat(self.path)
        key = (os.path.abspath(self.path), stat.st_size, stat.st_mtime_ns)
        with _WARNED_LOCK:
            if key in _WARNED:
                return
            _WARNED.add(key)
        logger.warning(
            "Video %s: the container declares %.3f s but %.3f s (%d frames at %.3f fps) can be decoded%s; "
            "it is read as %.3f s (a truncated or damaged file? re-encode or re-download it)",
            self.path, self.declared_duration, decoded, len(self), self.avg_fps,
            f", {self.dropped_frames} frame(s) after the cut left out" if self.dropped_frames else "", decoded,
        )

    def _build_index(self) -> None:
        """List pts and keyframes from the packets (no decoding); leave out what a cut made unreliable
        (:func:`~opentad.datasets.frame_index.index_packets`)."""
        packets = [
            (int(p.pts), p.dts, bool(p.is_keyframe), bool(p.is_corrupt))
            for p in self._container.demux(self._stream)
            if p.pts is not None and p.size > 0
        ]
        index = index_packets(packets, falls_short=lambda n: self._disagrees(n, shorter_only=True))
        self.dropped_frames = index.dropped_frames
        if not index.pts:
            raise VideoReadError(f"{self.path} has no video frames")
        self._index: FrameIndex = index

    def __len__(self) -> int:
        return len(self._index.pts)

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the file; the reader cannot be used afterwards."""
        container = self.__dict__.pop("_container", None)
        if container is not None:
            container.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, frames={len(self)}, fps={self.avg_fps:.3f})"

    def _seek(self, index: int) -> None:
        """Restart decoding at the last keyframe at or before frame ``index``."""
        self._container.seek(self._index.pts[index], stream=self._stream, backward=True, any_frame=False)
        self._frames = self._decoded_frames()
        self._pos = -1

    def _decoded_frames(self) -> Iterator["av.VideoFrame"]:
        """Frames from the current position on, cut-off (corrupt) packets left out as in the index."""
        for packet in self._container.demux(self._stream):
            if self._index.cut_pts is not None and packet.is_corrupt and packet.pts == self._index.cut_pts:
                continue
            yield from packet.decode()

    def get_batch(self, indices: Sequence[int]) -> torch.Tensor:
        """Decode the frames at ``indices`` (any order, repeats allowed).

        Args:
            indices: frame indices in ``[0, len(self))``.

        Returns:
            ``uint8`` tensor ``[N, 3, H, W]`` (RGB), ``N = len(indices)``, in
            the order of ``indices``.

        Raises:
            IndexError: an index is out of range (the message names the file).
            VideoReadError: decoding failed or a frame could not be reached.
        """
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        if wanted.size == 0:
            return torch.empty((0, 3, self.height, self.width), dtype=torch.uint8)
        if wanted.min() < 0 or wanted.max() >= len(self):
            raise IndexError(
                f"Frame indices must be in [0, {len(self)}) for {self.path}; got min {wanted.min()}, max {wanted.max()}"
            )
        targets = np.unique(wanted)
        out = torch.empty((len(targets), 3, self.height, self.width), dtype=torch.uint8)
        try:
            self._decode_sorted(targets.tolist(), out.numpy())
        except _av().error.FFmpegError as exc:
            raise VideoReadError(f"Cannot decode video {self.path}: {exc}") from exc
        if len(targets) == len(wanted) and bool((targets == wanted).all()):
            return out
        return out[torch.from_numpy(np.searchsorted(targets, wanted))]

    def _decode_sorted(self, targets: List[int], out: np.ndarray) -> None:
        """Decode ascending ``targets`` into ``out`` (``uint8 [len(targets), 3, H, W]``)."""
        for j, target in enumerate(targets):
            keyframe = self._index.keyframe_before(target)
            if self._frames is None or self._pos >= target or keyframe > self._pos + 1:
                self._seek(target)
            self._write_rgb(self._decode_until(target, keyframe), out[j])

    def _write_rgb(self, frame: av.VideoFrame, dst: np.ndarray) -> None:
        """Convert to planar RGB straight into ``dst`` ``[3, H, W]`` (no transposing copy)."""
        # threads=1: swscale's own thread pool costs more than it saves on one frame
        planar = frame.reformat(width=self.width, height=self.height, format="gbrp", threads=1)
        for channel, plane_index in ((0, 2), (1, 0), (2, 1)):  # gbrp stores G, B, R planes
            plane = planar.planes[plane_index]
            rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
            dst[channel] = rows[:, : plane.width]

    def _decode_until(self, target: int, keyframe: int) -> "av.VideoFrame":
        """Decode forward to frame ``target``, re-seeking earlier if a seek overshot."""
        retries = 0
        while True:
            for frame in self._frames:
                index = self._index.frame_of(frame.pts)
                self._pos = index
                if index == target:
                    return frame
                if index > target:
                    break
            else:
                raise VideoReadError(f"{self.path}: reached the end before frame {target} (of {len(self)})")
            # the seek landed after the target: start from an earlier keyframe
            retries += 1
            k = bisect.bisect_left(self._index.keyframes, keyframe) - retries
            if k < 0:
                pts = self._index.pts[target]
                raise VideoReadError(f"{self.path}: frame {target} could not be decoded (pts {pts})")
            self._seek(self._index.keyframes[k])
