"""What happens in each synthetic video: its length, actions and distractors.

A :class:`VideoPlan` is drawn from its own random stream, seeded by
``(seed, stream, subset, index)``, so a video does not depend on the other
videos, on their order or on the number of worker processes. Rendering and
features draw from other streams of the same key (:func:`video_rng`).

Action times are whole centiseconds (``start_cs``, ``end_cs``); the
annotation stores ``cs / 100`` seconds. Frame ``f`` shows time ``f / FPS``
and shows action ``a`` iff ``start_a <= f / FPS < end_a``
(:meth:`SegmentPlan.frame_range`).
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from opentad.datasets.synthetic.patterns import AMBIGUOUS_LABEL, ActionParams
from opentad.datasets.synthetic.settings import FPS, SyntheticSettings

__all__ = ["SUBSETS", "Stream", "video_rng", "SegmentPlan", "DistractorPlan", "VideoPlan", "plan_dataset", "plan_video"]

# subset name -> (id in seeds, video name prefix)
SUBSETS: Dict[str, Tuple[int, str]] = {"validation": (0, "video_validation_"), "test": (1, "video_test_")}


class Stream:
    """Ids of the independent random streams derived from the seed."""

    PLAN = 0
    RENDER = 1
    FEATURES = 2
    PROTOTYPES = 3
    GLOBAL = 4
    CLASSIFIER = 5


def video_rng(seed: int, stream: int, *key: int) -> np.random.Generator:
    """A generator for ``stream`` keyed by ``key`` (e.g. subset id, video index)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, *key)))


def _frame_of_cs(cs: int) -> int:
    """First frame whose time ``f / FPS`` is at or after ``cs`` centiseconds."""
    return -((-cs * FPS) // 100)


@dataclass(frozen=True)
class SegmentPlan:
    """An annotated segment: an action of class ``label``, or an ambiguous one.

    Attributes:
        label: class index; for an ambiguous segment, the pattern drawn faintly.
        start_cs, end_cs: start and end in centiseconds.
        ambiguous: True for an ``Ambiguous`` annotation.
        params: the appearance of the instance.
    """

    label: int
    start_cs: int
    end_cs: int
    ambiguous: bool
    params: ActionParams

    def frame_range(self) -> Tuple[int, int]:
        """``(first, stop)``: the frames ``first <= f < stop`` that show this segment."""
        return _frame_of_cs(self.start_cs), _frame_of_cs(self.end_cs)


@dataclass(frozen=True)
class DistractorPlan:
    """An object that drifts slowly on a wandering path; never an action.

    Position at time ``t``: ``x = x0 + ax * sin(2 pi (t / period_x + phase_x))``
    and likewise for ``y``. Visible on frames ``start_frame <= f < stop_frame``.
    """

    start_frame: int
    stop_frame: int
    shape: str
    size: float
    color: Tuple[float, float, float]
    x0: float
    y0: float
    ax: float
    ay: float
    period_x: float
    period_y: float
    phase_x: float
    phase_y: float
    proto: int


@dataclass(frozen=True)
class VideoPlan:
    """Everything about one video that annotations, frames and features share."""

    name: str
    subset: str
    index: int
    num_frames: int
    segments: Tuple[SegmentPlan, ...]
    distractors: Tuple[DistractorPlan, ...]

    @property
    def duration(self) -> float:
        """Length in seconds, ``num_frames / FPS``."""
        return self.num_frames / FPS

    def annotation(self, class_names: Sequence[str]) -> Dict[str, Any]:
        """The video's entry of the OpenTAD annotation JSON."""
        segments = sorted(self.segments, key=lambda s: (s.start_cs, s.end_cs))
        return {
            "subset": self.subset,
            "duration": self.duration,
            "frame": self.num_frames,
            "annotations": [
                {
                    "label": AMBIGUOUS_LABEL if s.ambiguous else class_names[s.label],
                    "segment": [s.start_cs / 100, s.end_cs / 100],
                }
                for s in segments
            ],
        }


def _bright_color(rng: np.random.Generator) -> Tuple[float, float, float]:
    rgb = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.55, 1.0), rng.uniform(0.75, 1.0))
    return tuple(round(255.0 * c, 3) for c in rgb)


def _draw_params(rng: np.random.Generator) -> ActionParams:
    return ActionParams(
        shape=("disc", "box")[int(rng.integers(2))],
        size=float(rng.uniform(0.06, 0.1)),
        color=_bright_color(rng),
        color2=_bright_color(rng),
        speed=float(rng.uniform(0.7, 1.4)),
        phase=float(rng.uniform()),
        u=tuple(float(v) for v in rng.uniform(size=3)),
    )


def _lognormal(rng: np.random.Generator, median: float, sigma: float, lo: float, hi: float) -> float:
    return float(np.clip(median * math.exp(sigma * rng.standard_normal()), lo, hi))


def _action_lengths(rng: np.random.Generator, s: SyntheticSettings, total_cs: int) -> List[int]:
    """Lengths in centiseconds of the actions of a non-empty video (at least one)."""
    count = max(1, int(rng.poisson(s.actions_per_minute * total_cs / 6000.0)))
    lo, hi = round(s.min_action * 100), round(s.max_action * 100)
    lengths = [
        min(hi, max(lo, round(100 * _lognormal(rng, s.median_action, s.action_sigma, lo / 100, hi / 100))))
        for _ in range(count)
    ]
    budget = int(s.max_fill * total_cs)
    while len(lengths) > 1 and sum(lengths) > budget:
        lengths.pop()
    lengths[0] = min(lengths[0], max(lo, budget))
    return lengths


def _plan_actions(rng: np.random.Generator, s: SyntheticSettings, total_cs: int) -> List[SegmentPlan]:
    """Non-ambiguous actions, in time order, inside ``[0, total_cs]``."""
    lengths = _action_lengths(rng, s, total_cs)
    if s.classes_per_video:  # the video's classes first, then each action's among them
        pool = rng.permutation(s.num_classes)[: s.classes_per_video]
        labels = pool[rng.integers(0, len(pool), size=len(lengths))]
    else:
        labels = rng.integers(0, s.num_classes, size=len(lengths))
    overlaps = [0] + [
        int(rng.uniform(0.1, 0.5) * min(a, b)) if rng.uniform() < s.overlap_prob else 0
        for a, b in zip(lengths, lengths[1:])
    ]
    free = total_cs - sum(lengths) + sum(overlaps)
    weights = rng.exponential(size=len(lengths) + 1)
    gaps = np.floor(weights / weights.sum() * free).astype(int)
    segments, cursor = [], int(gaps[0])
    for i, (length, label) in enumerate(zip(lengths, labels)):
        start = cursor if i == 0 else (segments[-1].end_cs - overlaps[i] if overlaps[i] else cursor + int(gaps[i]))
        segments.append(SegmentPlan(int(label), start, start + length, False, _draw_params(rng)))
        cursor = start + length
    return segments


def _plan_ambiguous(
    rng: np.random.Generator, s: SyntheticSettings, actions: List[SegmentPlan], total_cs: int
) -> List[SegmentPlan]:
    """Ambiguous segments inside some gaps of at least 1.5 s between actions."""
    bounds = [0] + [b for a in actions for b in (a.start_cs, a.end_cs)] + [total_cs]
    result = []
    for gap_start, gap_end in zip(bounds[0::2], bounds[1::2]):
        gap = gap_end - gap_start
        if gap < 150 or rng.uniform() >= s.ambiguous_prob:
            continue
        length = int(rng.integers(50, min(300, gap - 40) + 1))
        start = gap_start + 20 + int(rng.integers(0, gap - 40 - length + 1))
        result.append(SegmentPlan(int(rng.integers(s.num_classes)), start, start + length, True, _draw_params(rng)))
    return result


def _plan_second_labels(
    rng: np.random.Generator, s: SyntheticSettings, actions: List[SegmentPlan]
) -> List[SegmentPlan]:
    """Multi-label ground truth: each action's segment, with chance ``multi_label_prob``, again with another class.

    The second class is drawn uniformly among the video's other action classes
    (among all other classes when the video has one), with an appearance of
    its own. Nothing is drawn when the chance is 0, so plans without it are unchanged.
    """
    if s.multi_label_prob <= 0:
        return []
    present = sorted({a.label for a in actions})
    result = []
    for action in actions:
        if rng.uniform() < s.multi_label_prob:
            others = [k for k in present if k != action.label] or [k for k in range(s.num_classes) if k != action.label]
            other = others[int(rng.integers(len(others)))]
            result.append(SegmentPlan(other, action.start_cs, action.end_cs, False, _draw_params(rng)))
    return result


def _plan_distractor(rng: np.random.Generator, num_frames: int) -> DistractorPlan:
    if rng.uniform() < 0.5:
        start, stop = 0, num_frames
    else:
        length = int(rng.integers(min(num_frames, 3 * FPS), num_frames + 1))
        start = int(rng.integers(0, num_frames - length + 1))
        stop = start + length
    return DistractorPlan(
        start_frame=start,
        stop_frame=stop,
        shape=("disc", "box")[int(rng.integers(2))],
        size=float(rng.uniform(0.05, 0.1)),
        color=_bright_color(rng),
        x0=float(rng.uniform(0.25, 0.75)),
        y0=float(rng.uniform(0.25, 0.75)),
        ax=float(rng.uniform(0.05, 0.2)),
        ay=float(rng.uniform(0.05, 0.2)),
        period_x=float(rng.uniform(10.0, 25.0)),
        period_y=float(rng.uniform(10.0, 25.0)),
        phase_x=float(rng.uniform()),
        phase_y=float(rng.uniform()),
        proto=int(rng.integers(4)),
    )


def plan_video(settings: SyntheticSettings, subset: str, index: int, empty: bool) -> VideoPlan:
    """Draw the plan of video ``index`` (1-based) of ``subset``.

    Args:
        settings: the dataset settings.
        subset: ``"validation"`` or ``"test"``.
        index: 1-based position in the subset (gives the name).
        empty: True for a video without any annotated segment.

    Raises:
        KeyError: unknown subset (the message lists the valid ones).
    """
    if subset not in SUBSETS:
        raise KeyError(f"Unknown subset {subset!r}; valid subsets: {sorted(SUBSETS)}.")
    subset_id, prefix = SUBSETS[subset]
    rng = video_rng(settings.seed, Stream.PLAN, subset_id, index)
    s = settings
    median = s.median_duration if s.median_duration is not None else math.sqrt(s.min_duration * s.max_duration)
    num_frames = max(2, round(FPS * _lognormal(rng, median, s.duration_sigma, s.min_duration, s.max_duration)))
    total_cs = num_frames * 100 // FPS
    segments: List[SegmentPlan] = []
    if not empty:
        actions = _plan_actions(rng, s, total_cs)
        segments = actions + _plan_ambiguous(rng, s, actions, total_cs) + _plan_second_labels(rng, s, actions)
    distractors = tuple(_plan_distractor(rng, num_frames) for _ in range(int(rng.integers(0, s.max_distractors + 1))))
    return VideoPlan(f"{prefix}{index:07d}", subset, index, num_frames, tuple(segments), distractors)


def _empty_indices(settings: SyntheticSettings) -> Dict[str, set]:
    """1-based indices of the videos without actions, per subset."""
    rng = video_rng(settings.seed, Stream.GLOBAL)
    result = {}
    for subset, count in (("validation", settings.num_train), ("test", settings.num_test)):
        n_empty = round(settings.empty_fraction * count)
        if settings.empty_fraction > 0 and count >= 4:
            n_empty = max(1, n_empty)
        result[subset] = {int(i) + 1 for i in rng.choice(count, size=min(n_empty, count), replace=False)}
    return result


def plan_dataset(settings: SyntheticSettings) -> List[VideoPlan]:
    """Plans of all videos: the validation subset, then the test subset."""
    empty = _empty_indices(settings)
    counts = (("validation", settings.num_train), ("test", settings.num_test))
    return [
        plan_video(settings, subset, i, i in empty[subset]) for subset, count in counts for i in range(1, count + 1)
    ]
