"""Frames of a synthetic video: textured background, camera jitter, objects, noise.

Each frame is composed, in float32 on the 0-255 scale, as

1. a crop of a per-video background texture (smooth colour blotches, a fine
   luminance texture and faint stripes) displaced by the camera jitter (a
   smooth random walk, whole pixels) and scaled by a slow lighting drift;
2. the distractors, then the annotated segments active at that frame, drawn
   as anti-aliased shapes moved with the camera (ambiguous segments at 35 %
   opacity);
3. Gaussian pixel noise (a random crop of one of 16 noise fields drawn
   once per video), then rounding and clipping to uint8.

All randomness comes from the video's ``Stream.RENDER`` generator. Only
operations whose results do not depend on the CPU are used: element-wise
``+ - * /``, ``sqrt``, comparisons and rounding in NumPy (IEEE-exact in every
code path), and sines through the C library (:func:`_sin`, and ``math`` in
the patterns) instead of NumPy's vectorised ones, which take CPU-specific
code paths.
"""
from __future__ import annotations

import colorsys
import math
from typing import Iterator, List

import numpy as np

from opentad.datasets.synthetic.patterns import Shape, pattern_for_class
from opentad.datasets.synthetic.plan import Stream, SUBSETS, VideoPlan, video_rng
from opentad.datasets.synthetic.settings import FPS, SyntheticSettings

__all__ = ["AMBIGUOUS_OPACITY", "draw_shape", "shapes_at", "VideoRenderer"]

AMBIGUOUS_OPACITY = 0.35
NOISE_BANK = 16  # noise fields per video
NOISE_PAD = 16  # extra rows / columns of each field, for random crops


def _sin(x: np.ndarray) -> np.ndarray:
    """Element-wise ``math.sin`` of a float64 array (same shape).

    NumPy's vectorised transcendental functions pick their code by CPU
    features (e.g. AVX-512), so their last bits differ between machines;
    glibc's ``sin`` runs the same code on every CPU with FMA (see
    ``docs/synthetic_data.md``, "Determinism").
    """
    return np.array([math.sin(v) for v in x.reshape(-1).tolist()], dtype=np.float64).reshape(x.shape)


def _resize_bilinear(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of ``grid`` [h, w, c] to [height, width, c]."""
    gh, gw = grid.shape[:2]
    ys, xs = np.linspace(0, gh - 1, height), np.linspace(0, gw - 1, width)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, gh - 1), np.minimum(x0 + 1, gw - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = grid[y0][:, x0] * (1 - wx) + grid[y0][:, x1] * wx
    bottom = grid[y1][:, x0] * (1 - wx) + grid[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured background [height, width, 3], float32, 0-255."""
    base = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.1, 0.45), rng.uniform(0.25, 0.5))) * 255.0
    blotches = _resize_bilinear(rng.standard_normal((4, 4, 3)), height, width) * 22.0
    grain = _resize_bilinear(rng.standard_normal((max(2, height // 6), max(2, width // 6), 1)), height, width) * 9.0
    theta, wavelength = rng.uniform(0, math.pi), rng.uniform(6.0, 20.0)
    yy, xx = np.mgrid[0:height, 0:width]
    along = xx * math.cos(theta) + yy * math.sin(theta)
    stripes = 5.0 * _sin(2 * math.pi * along / wavelength + rng.uniform(0, 6.3))
    return (base + blotches + grain + stripes[..., None]).astype(np.float32)


def _camera_path(rng: np.random.Generator, num_frames: int, std: float, limit: int) -> np.ndarray:
    """Integer camera offsets [num_frames, 2] (dx, dy): an AR(1) walk with stationary ``std``."""
    steps = rng.standard_normal((num_frames, 2)) * std * math.sqrt(1 - 0.95**2)
    path = np.empty((num_frames, 2))
    current = rng.standard_normal(2) * std
    for f in range(num_frames):
        current = 0.95 * current + steps[f]
        path[f] = current
    return np.clip(np.round(path), -limit, limit).astype(int)


def draw_shape(image: np.ndarray, shape: Shape, dx: float = 0.0, dy: float = 0.0) -> None:
    """Blend an anti-aliased ``shape`` into ``image`` in place.

    Args:
        image: float32 [H, W, 3], 0-255.
        shape: what to draw, in normalised coordinates (see :class:`Shape`).
        dx, dy: camera offset in pixels (the shape moves by ``-dx, -dy``).

    Raises:
        ValueError: unknown ``shape.kind``.
    """
    height, width = image.shape[:2]
    cx, cy = shape.x * width - dx, shape.y * height - dy
    r = shape.size * min(height, width)
    if shape.opacity <= 0.0 or r <= 0.0:
        return
    reach = r * (1.5 if shape.kind in ("box", "bar") else 1.0) + 1.5
    x0, x1 = max(0, int(cx - reach)), min(width, int(math.ceil(cx + reach)))
    y0, y1 = max(0, int(cy - reach)), min(height, int(math.ceil(cy + reach)))
    if x0 >= x1 or y0 >= y1:
        return
    px = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - cx
    py = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy
    if shape.kind == "disc":
        dist = np.sqrt(px**2 + py**2) - r
    elif shape.kind == "ring":
        thick = r * shape.aspect
        dist = np.abs(np.sqrt(px**2 + py**2) - (r - thick / 2)) - thick / 2
    elif shape.kind in ("box", "bar"):
        c, s = math.cos(shape.angle), math.sin(shape.angle)
        u, v = px * c + py * s, py * c - px * s
        half_v = r if shape.kind == "box" else max(1.0, r * shape.aspect)
        dist = np.maximum(np.abs(u) - r, np.abs(v) - half_v)
    else:
        raise ValueError(f"Unknown shape kind {shape.kind!r}; valid kinds: box, bar, disc, ring.")
    alpha = (np.clip(0.5 - dist, 0.0, 1.0) * shape.opacity)[..., None]
    patch = image[y0:y1, x0:x1]
    patch += alpha * (np.asarray(shape.color, dtype=np.float32) - patch)


def shapes_at(plan: VideoPlan, frame: int) -> List[Shape]:
    """The shapes visible on ``frame``: distractors first, then the segments."""
    t = frame / FPS
    shapes = []
    for d in plan.distractors:
        if d.start_frame <= frame < d.stop_frame:
            x = d.x0 + d.ax * math.sin(2 * math.pi * (t / d.period_x + d.phase_x))
            y = d.y0 + d.ay * math.sin(2 * math.pi * (t / d.period_y + d.phase_y))
            shapes.append(Shape(d.shape, x, y, d.size, d.color))
    for seg in plan.segments:
        first, stop = seg.frame_range()
        if first <= frame < stop:
            drawn = pattern_for_class(seg.label).fn(t - seg.start_cs / 100, seg.params)
            if seg.ambiguous:
                drawn = [sh._replace(opacity=sh.opacity * AMBIGUOUS_OPACITY) for sh in drawn]
            shapes.extend(drawn)
    return shapes


class VideoRenderer:
    """Renders the frames of one planned video.

    Args:
        plan: the video's plan.
        settings: the dataset settings (size, noise, jitter, seed).
    """

    def __init__(self, plan: VideoPlan, settings: SyntheticSettings) -> None:
        self.plan = plan
        self.width, self.height = settings.width, settings.height
        rng = video_rng(settings.seed, Stream.RENDER, SUBSETS[plan.subset][0], plan.index)
        std = settings.jitter_px * min(self.width, self.height) / 96.0
        self.margin = int(math.ceil(3 * std)) + 1
        self.texture = _background(rng, self.height + 2 * self.margin, self.width + 2 * self.margin)
        self.camera = _camera_path(rng, plan.num_frames, std, self.margin)
        period, phase = rng.uniform(4.0, 12.0), rng.uniform()
        times = np.arange(plan.num_frames) / FPS
        self.gain = (1.0 + 0.05 * _sin(2 * math.pi * (times / period + phase))).astype(np.float32)
        # Noise: per frame, a random crop of one of NOISE_BANK fields (cheaper
        # than drawing H * W * 3 normals per frame, and as random to the eye).
        bank_shape = (NOISE_BANK, self.height + NOISE_PAD, self.width + NOISE_PAD, 3)
        self.noise_bank = rng.standard_normal(bank_shape, dtype=np.float32) * np.float32(settings.pixel_noise)
        self.noise_pick = rng.integers(0, [NOISE_BANK, NOISE_PAD, NOISE_PAD], size=(plan.num_frames, 3))
        self.has_noise = settings.pixel_noise > 0

    def frame(self, f: int) -> np.ndarray:
        """Frame ``f`` as uint8 [H, W, 3] (RGB); the same whatever the order frames are asked in."""
        dx, dy = (int(v) for v in self.camera[f])
        m = self.margin
        image = self.texture[m + dy : m + dy + self.height, m + dx : m + dx + self.width] * self.gain[f]
        for shape in shapes_at(self.plan, f):
            draw_shape(image, shape, dx, dy)
        if self.has_noise:
            k, oy, ox = (int(v) for v in self.noise_pick[f])
            image += self.noise_bank[k, oy : oy + self.height, ox : ox + self.width]
        image += 0.5
        np.clip(image, 0.0, 255.0, out=image)
        return image.astype(np.uint8)

    def frames(self) -> Iterator[np.ndarray]:
        """All frames in order, each uint8 [H, W, 3]."""
        for f in range(self.plan.num_frames):
            yield self.frame(f)
