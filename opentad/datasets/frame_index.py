"""The frame index of a video stream, made from its packets without decoding.

:class:`~opentad.datasets.video_reader.VideoReader` demuxes a file once and
hands the packets to :func:`index_packets`. Frame ``i`` is the frame with the
``i``-th smallest presentation timestamp (pts), as in decord, so indices are
exact also for variable frame rate files.

A file cut short (``video_reader``'s module docstring) is indexed as its
decodable beginning: a last packet marked corrupt is left out, and so is
every frame whose pts is not below the first lost packet's dts (the corrupt
packet's, or, for a cut between two packets, the last packet's dts plus one).
"""
from __future__ import annotations

import bisect
import dataclasses
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["FrameIndex", "Packet", "index_packets"]

#: ``(pts, dts or None, is_keyframe, is_corrupt)`` of one packet, in file order.
Packet = Tuple[int, Optional[int], bool, bool]


@dataclasses.dataclass(frozen=True)
class FrameIndex:
    """Which frames a video has and where decoding may start.

    Attributes:
        pts: the kept frames' pts, ascending (frame ``i`` has ``pts[i]``).
        pts_to_index: ``{pts: frame index}``.
        keyframes: ascending frame indices of keyframes, always starting with 0.
        cut_pts: pts of the cut-off (corrupt) last packet, to be skipped when decoding; None if none.
        dropped_frames: frames left out because the file is cut short.
    """

    pts: List[int]
    pts_to_index: Dict[int, int]
    keyframes: List[int]
    cut_pts: Optional[int]
    dropped_frames: int

    def frame_of(self, pts: int) -> int:
        """The index of the frame with ``pts``; for a pts the demuxer did not report, the nearest listed one."""
        if pts in self.pts_to_index:
            return self.pts_to_index[pts]
        j = bisect.bisect_left(self.pts, pts)
        if j == len(self.pts) or (j > 0 and pts - self.pts[j - 1] < self.pts[j] - pts):
            j -= 1
        return j

    def keyframe_before(self, index: int) -> int:
        """The last keyframe at or before frame ``index``."""
        return self.keyframes[bisect.bisect_right(self.keyframes, index) - 1]


def index_packets(packets: Sequence[Packet], *, falls_short: Callable[[int], bool]) -> FrameIndex:
    """Index the frames of ``packets``, leaving out what a cut made unreliable (module docstring).

    Args:
        packets: the video stream's packets that carry a pts and data, in file order.
        falls_short: whether ``n`` frames fall short of the declared duration by
            more than the slack (then the file was cut between two packets).

    Returns:
        The index; its ``pts`` is empty when no frame is left.
    """
    packets = list(packets)
    cut_pts: Optional[int] = None
    bound = None
    if packets and packets[-1][3]:  # the last packet is cut off by the end of the file
        cut_pts = packets[-1][0]
        bound = packets[-1][1] if packets[-1][1] is not None else packets[-1][0]
        packets = packets[:-1]
    elif packets and falls_short(len(packets)) and packets[-1][1] is not None:
        bound = packets[-1][1] + 1  # cut between two packets: every lost frame has pts > this dts
    kept = packets if bound is None else [p for p in packets if p[0] < bound]
    dropped = len(packets) - len(kept) + (cut_pts is not None)
    pts, keys = [p[0] for p in kept], [p[2] for p in kept]
    order = np.argsort(pts, kind="stable")
    sorted_pts: List[int] = [pts[i] for i in order]
    rank = np.empty(len(pts), dtype=np.int64)
    rank[order] = np.arange(len(pts))
    keyframes: List[int] = sorted(int(rank[i]) for i, k in enumerate(keys) if k)
    if not keyframes or keyframes[0] != 0:
        keyframes.insert(0, 0)
    return FrameIndex(
        pts=sorted_pts,
        pts_to_index={p: i for i, p in enumerate(sorted_pts)},
        keyframes=keyframes,
        cut_pts=cut_pts,
        dropped_frames=dropped,
    )
