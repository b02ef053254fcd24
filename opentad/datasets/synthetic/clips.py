"""Labelled clips of synthetic videos, for pretraining a video backbone.

The real recipes start from a ViT pretrained on a large video corpus
(VideoMAE on Kinetics) and fine-tune adapters on THUMOS14. The synthetic
analogue: a separate set of synthetic videos (their own seed, never the
detection dataset's), rendered in memory straight at the backbone's input
size, sampled every ``frame_stride`` frames as the detection pipeline samples
them, with a label per sampled frame:

* ``0 .. K-1``: the (non-ambiguous) action shown at that frame (the first
  one planned when two overlap);
* ``K``: background (no action);
* ``-1``: ignored (an ``Ambiguous`` segment).

Nothing is written to disk; everything is a function of the settings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from opentad.datasets.synthetic.patterns import pattern_for_class
from opentad.datasets.synthetic.plan import VideoPlan, plan_dataset
from opentad.datasets.synthetic.render import VideoRenderer, draw_shape
from opentad.datasets.synthetic.settings import FPS
from opentad.datasets.synthetic.settings import SyntheticSettings

__all__ = [
    "IGNORE",
    "LabelledVideo",
    "frame_labels",
    "patch_cover",
    "render_labelled_videos",
    "ClipSampler",
    "tubelet_labels",
    "token_labels",
]

#: label of frames that no loss should see (``Ambiguous`` segments, mixed tubelets).
IGNORE = -1


@dataclass(frozen=True)
class LabelledVideo:
    """One rendered video, sampled every ``frame_stride`` frames.

    Attributes:
        frames: uint8 ``[N, H, W, 3]`` (RGB).
        labels: int64 ``[N]``, see the module docstring.
        cover: float32 ``[N, K + 1, h, w]`` or None: the share of each
            ``patch x patch`` cell of a frame covered by the objects of an
            action of class ``k`` (``k < K``) or of an ``Ambiguous`` segment
            (``k = K``).
    """

    frames: np.ndarray
    labels: np.ndarray
    cover: Optional[np.ndarray] = None


def frame_labels(plan: VideoPlan, frame_indices: np.ndarray, num_classes: int) -> np.ndarray:
    """Label of each listed frame of a video.

    Args:
        plan: the video's plan.
        frame_indices: int ``[N]`` frame numbers.
        num_classes: ``K``; background is ``K``.

    Returns:
        int64 ``[N]``: a class, ``K`` (background) or :data:`IGNORE`.
    """
    labels = np.full(len(frame_indices), num_classes, dtype=np.int64)
    # Later segments first, so that where two overlap the first planned one wins.
    for segment in reversed(plan.segments):
        first, stop = segment.frame_range()
        inside = (frame_indices >= first) & (frame_indices < stop)
        labels[inside] = IGNORE if segment.ambiguous else segment.label
    return labels


def patch_cover(plan: VideoPlan, frame: int, camera: Tuple[int, int], num_classes: int, size: Tuple[int, int],
                patch: int) -> np.ndarray:
    """Share of each ``patch x patch`` cell covered by each class's action objects on one frame.

    Args:
        plan: the video's plan.
        frame: the frame number.
        camera: the renderer's camera offset ``(dx, dy)`` on that frame.
        num_classes: ``K``; channel ``K`` collects ``Ambiguous`` segments.
        size: frame ``(height, width)``, multiples of ``patch``.
        patch: cell size in pixels.

    Returns:
        float32 ``[K + 1, height // patch, width // patch]`` in ``[0, 1]``.
    """
    height, width = size
    cover = np.zeros((num_classes + 1, height // patch, width // patch), dtype=np.float32)
    t = frame / FPS
    for segment in plan.segments:
        first, stop = segment.frame_range()
        if not first <= frame < stop:
            continue
        mask = np.zeros((height, width, 3), dtype=np.float32)
        for shape in pattern_for_class(segment.label).fn(t - segment.start_cs / 100, segment.params):
            draw_shape(mask, shape._replace(color=(1.0, 1.0, 1.0)), *camera)
        cells = mask[..., 0].reshape(height // patch, patch, width // patch, patch).mean((1, 3))
        channel = num_classes if segment.ambiguous else segment.label
        cover[channel] = np.maximum(cover[channel], cells)
    return cover


def render_labelled_videos(
    settings: SyntheticSettings, frame_stride: int, subset: str, patch: Optional[int] = None
) -> List[LabelledVideo]:
    """Render every video of one subset of ``settings`` every ``frame_stride`` frames.

    Args:
        settings: the pretraining set's settings (its own seed; ``width`` and
            ``height`` the backbone's input size).
        frame_stride: keep frames ``0, s, 2s, ...``, as the detection pipeline does.
        subset: ``"validation"`` (training clips) or ``"test"`` (held-out clips).
        patch: also compute :attr:`LabelledVideo.cover` on cells of this size.

    Raises:
        ValueError: ``frame_stride < 1``.
    """
    if frame_stride < 1:
        raise ValueError(f"frame_stride={frame_stride} must be >= 1")
    videos = []
    for plan in plan_dataset(settings):
        if plan.subset != subset:
            continue
        renderer = VideoRenderer(plan, settings)
        indices = np.arange(0, plan.num_frames, frame_stride)
        frames = np.stack([renderer.frame(int(f)) for f in indices])
        cover = None
        if patch is not None:
            size = (settings.height, settings.width)
            cover = np.stack(
                [patch_cover(plan, int(f), tuple(renderer.camera[f]), settings.num_classes, size, patch) for f in indices]
            )
        videos.append(LabelledVideo(frames, frame_labels(plan, indices, settings.num_classes), cover))
    return videos


def token_labels(cover: np.ndarray, tubelet_size: int, threshold: float) -> np.ndarray:
    """One label per token: the class whose objects cover the cell most over the tubelet.

    Args:
        cover: ``[..., T, K + 1, h, w]`` (:attr:`LabelledVideo.cover` of a clip).
        tubelet_size: frames per token in time.
        threshold: least mean cover for a token to take a class; below it the
            token is background (``K``); where an ``Ambiguous`` segment covers
            at least ``threshold`` and no class does, :data:`IGNORE`.

    Returns:
        int64 ``[..., T // tubelet_size, h, w]``.
    """
    *lead, frames, channels, h, w = cover.shape
    mean = cover.reshape(*lead, frames // tubelet_size, tubelet_size, channels, h, w).mean(-4)
    classes = mean[..., :-1, :, :]
    best = classes.argmax(-3)
    labels = np.where(classes.max(-3) >= threshold, best, channels - 1)
    ambiguous = (mean[..., -1, :, :] >= threshold) & (labels == channels - 1)
    return np.where(ambiguous, IGNORE, labels).astype(np.int64)


def tubelet_labels(labels: np.ndarray, tubelet_size: int) -> np.ndarray:
    """One label per tubelet: the frames' common label, or :data:`IGNORE` where they differ.

    Args:
        labels: int ``[..., T]`` with ``T`` a multiple of ``tubelet_size``.
        tubelet_size: frames per token in time.

    Returns:
        int64 ``[..., T // tubelet_size]``.
    """
    grouped = labels.reshape(*labels.shape[:-1], labels.shape[-1] // tubelet_size, tubelet_size)
    same = (grouped == grouped[..., :1]).all(-1)
    return np.where(same, grouped[..., 0], IGNORE).astype(np.int64)


class ClipSampler:
    """Random fixed-length clips from labelled videos, reproducible from a seed.

    Args:
        videos: the rendered videos (each at least ``clip_len`` sampled frames).
        clip_len: sampled frames per clip (the backbone's ``num_frames``).
        seed: seed of the sampling stream.

    Raises:
        ValueError: no video is long enough for one clip.
    """

    def __init__(self, videos: Sequence[LabelledVideo], *, clip_len: int, seed: int) -> None:
        self.videos = [v for v in videos if len(v.labels) >= clip_len]
        if not self.videos:
            raise ValueError(f"no video has {clip_len} sampled frames; render longer videos or a smaller stride")
        self.clip_len = clip_len
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int) -> Tuple[np.ndarray, np.ndarray]:
        """A batch of clips.

        Returns:
            frames uint8 ``[B, clip_len, H, W, 3]``, labels int64 ``[B, clip_len]``
            and cover ``[B, clip_len, K + 1, h, w]`` (None when the videos have none).
        """
        picks = []
        for _ in range(batch_size):
            video = self.videos[int(self.rng.integers(len(self.videos)))]
            start = int(self.rng.integers(0, len(video.labels) - self.clip_len + 1))
            picks.append(self._clip(video, start))
        return _stack(picks)

    def _clip(self, video: LabelledVideo, start: int):
        stop = start + self.clip_len
        cover = None if video.cover is None else video.cover[start:stop]
        return video.frames[start:stop], video.labels[start:stop], cover

    def windows(self) -> List[Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]]:
        """Every video cut into consecutive non-overlapping clips (for evaluation), as ``(frames, labels, cover)``."""
        return [
            self._clip(video, start)
            for video in self.videos
            for start in range(0, len(video.labels) - self.clip_len + 1, self.clip_len)
        ]


def _stack(picks):
    frames, labels, cover = zip(*picks)
    return np.stack(frames), np.stack(labels), None if cover[0] is None else np.stack(cover)
