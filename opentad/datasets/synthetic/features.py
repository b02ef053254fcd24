"""Snippet features of a synthetic video, made from its plan (not its pixels).

Row ``t`` of the ``[T, C]`` float32 array (``T = frames // 4``) summarises
frames ``[4t, 4t + 4)``; its time is the centre ``tau_t = (4t + 2) / FPS``.
With unit vectors ``P_k`` (class ``k``), ``B`` (background), ``S`` / ``E``
(start / end) and ``D_j`` (4 distractor kinds) shared by the whole dataset
(each from its own seed stream, so ``P_k`` does not depend on the number of
classes), and ``cover_a(t)`` the fraction of the row's 4 frames inside
segment ``a``:

    x_t = b                                             per-video bias, N(0, 0.25^2 / C) per channel
        + 0.3 * (1 - min(1, sum_actions cover_a(t))) * B
        + sum_segments cover_a(t) * w_a * amp_a * (P_{k_a} + v_a)
        + sum_actions 0.6 * (g(tau_t - start_a) * S + g(tau_t - end_a) * E)
        + sum_distractors 0.5 * visible_d(t) * D_{j_d}
        + n_t

where ``amp_a ~ U(0.7, 1.2)`` and ``v_a ~ N(0, 0.35^2 / C)`` per channel
vary per instance, ``w_a`` is 1 for actions and 0.35 for ``Ambiguous``
segments (which get no boundary cue), ``g(x) = exp(-x^2 / (2 * 0.25^2))``
(seconds), ``visible_d(t)`` is the fraction of the row's frames showing
distractor ``d``, and ``n_t`` is noise of std ``feat_noise`` per channel: an
AR(1) process over ``t`` (coefficient 0.7, 80 % of the variance) plus white
noise (20 %).

The result is the same on every CPU: besides element-wise arithmetic
(IEEE-exact in every NumPy code path), norms are exactly rounded sums
(``math.fsum``, not BLAS, whose summation order depends on the CPU) and
``exp`` is the C library's (``math.exp``, not NumPy's CPU-specific SIMD code).
"""
from __future__ import annotations

import math

import numpy as np

from opentad.datasets.synthetic.plan import SUBSETS, Stream, VideoPlan, video_rng
from opentad.datasets.synthetic.settings import FEATURE_STRIDE, FPS, SyntheticSettings

__all__ = ["NUM_DISTRACTOR_KINDS", "unit_vector", "class_prototypes", "coverage", "video_features"]

NUM_DISTRACTOR_KINDS = 4
_SPECIAL = {"background": 0, "start": 1, "end": 2}  # ids of the non-class vectors
_BOUNDARY_SIGMA_S = 0.25
# g is evaluated within this many seconds of a boundary only: beyond, 0.6 * g < 4e-32,
# which added to any float64 above 1e-15 in magnitude changes nothing.
_BOUNDARY_REACH_S = 3.0
_AR_COEF = 0.7


def unit_vector(seed: int, group: int, index: int, dim: int) -> np.ndarray:
    """A random unit vector [dim] (float64) of stream ``(PROTOTYPES, group, index)``.

    Groups: 0 classes, 1 background / start / end, 2 distractor kinds.
    """
    v = video_rng(seed, Stream.PROTOTYPES, group, index).standard_normal(dim)
    return v / math.sqrt(math.fsum((v * v).tolist()))  # exactly rounded: no BLAS


def class_prototypes(seed: int, num_classes: int, dim: int) -> np.ndarray:
    """The class vectors ``P_k`` stacked: [num_classes, dim], float64."""
    return np.stack([unit_vector(seed, 0, k, dim) for k in range(num_classes)])


def coverage(first: int, stop: int, num_rows: int) -> np.ndarray:
    """Fraction of the frames ``[4t, 4t + 4)`` of each row ``t`` inside ``[first, stop)``.

    Returns:
        float64 [num_rows].
    """
    starts = np.arange(num_rows) * FEATURE_STRIDE
    overlap = np.minimum(starts + FEATURE_STRIDE, stop) - np.maximum(starts, first)
    return np.clip(overlap, 0, FEATURE_STRIDE) / FEATURE_STRIDE


def _noise(rng: np.random.Generator, rows: int, dim: int, std: float) -> np.ndarray:
    """AR(1) (80 % of the variance) plus white (20 %) noise [rows, dim] of total std ``std``."""
    innovations = rng.standard_normal((rows, dim)) * math.sqrt(1 - _AR_COEF**2)
    smooth = np.empty((rows, dim))
    current = rng.standard_normal(dim)
    for t in range(rows):
        current = _AR_COEF * current + innovations[t]
        smooth[t] = current
    white = rng.standard_normal((rows, dim))
    return std * (math.sqrt(0.8) * smooth + math.sqrt(0.2) * white)


def _bump(times: np.ndarray, at: float) -> np.ndarray:
    """``g(times - at)``, float64 like ``times``; 0 farther than ``_BOUNDARY_REACH_S`` from ``at``."""
    out = np.zeros_like(times)
    near = np.flatnonzero(np.abs(times - at) < _BOUNDARY_REACH_S)
    scale = 2 * _BOUNDARY_SIGMA_S**2
    out[near] = [math.exp(-(d * d) / scale) for d in (times[near] - at).tolist()]
    return out


def video_features(plan: VideoPlan, settings: SyntheticSettings) -> np.ndarray:
    """The features of one video following the recipe in the module docstring.

    Args:
        plan: the video's plan.
        settings: dataset settings (``seed``, ``num_classes``, ``feat_dim``, ``feat_noise``).

    Returns:
        float32 [T, C] with ``T = plan.num_frames // 4`` and ``C = settings.feat_dim``.
    """
    dim, rows = settings.feat_dim, plan.num_frames // FEATURE_STRIDE
    rng = video_rng(settings.seed, Stream.FEATURES, SUBSETS[plan.subset][0], plan.index)
    protos = class_prototypes(settings.seed, settings.num_classes, dim)
    background, start_v, end_v = (unit_vector(settings.seed, 1, i, dim) for i in _SPECIAL.values())
    times = (np.arange(rows) * FEATURE_STRIDE + FEATURE_STRIDE / 2) / FPS

    x = np.tile(rng.standard_normal(dim) * 0.25 / math.sqrt(dim), (rows, 1))
    action_cover = np.zeros(rows)
    for seg in plan.segments:
        cover = coverage(*seg.frame_range(), rows)
        amp = rng.uniform(0.7, 1.2) * (0.35 if seg.ambiguous else 1.0)
        variation = rng.standard_normal(dim) * 0.35 / math.sqrt(dim)
        x += np.outer(cover * amp, protos[seg.label] + variation)
        if not seg.ambiguous:
            action_cover += cover
            x += 0.6 * np.outer(_bump(times, seg.start_cs / 100), start_v)
            x += 0.6 * np.outer(_bump(times, seg.end_cs / 100), end_v)
    x += 0.3 * np.outer(1.0 - np.minimum(1.0, action_cover), background)
    for d in plan.distractors:
        x += 0.5 * np.outer(coverage(d.start_frame, d.stop_frame, rows), unit_vector(settings.seed, 2, d.proto, dim))
    x += _noise(rng, rows, dim, settings.feat_noise)
    return x.astype(np.float32)

