"""Settings of the synthetic THUMOS-format dataset, and the named presets.

Everything the generator produces is a function of one
:class:`SyntheticSettings` value (the seed included); its hash, stored in the
output's manifest, decides whether a rerun can skip work.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Dict, Mapping

from opentad.datasets.synthetic.patterns import CLASS_NAMES

__all__ = ["FPS", "FEATURE_STRIDE", "GENERATOR_VERSION", "SyntheticSettings", "PRESETS", "settings_from_preset"]

FPS = 30  # frames per second of every video (the layout's contract)
FEATURE_STRIDE = 4  # frames summarised by one feature row (the layout's contract)
# Bump when the generator's output changes for unchanged settings, so that
# stale outputs are regenerated instead of skipped.
# 2: yuv420p converted by the writer, x264 with cpu-independent=1 (same frames on any CPU).
# 3: classifiers/video_classifier.json (video-level class scores for the proposal detectors).
GENERATOR_VERSION = 3


@dataclass(frozen=True)
class SyntheticSettings:
    """Everything that determines a generated dataset.

    Attributes:
        seed: master seed; same settings and seed give the same dataset.
        num_train: videos in the ``validation`` subset (used for training).
        num_test: videos in the ``test`` subset (used for evaluation).
        num_classes: the first ``num_classes`` THUMOS14 classes, 1 to 20.
        width, height: frame size in pixels, both even (yuv420p).
        min_duration, max_duration: video length bounds in seconds.
        median_duration: median of the log-normal video length before
            clipping; None means the geometric mean of the bounds.
        duration_sigma: log-normal sigma of the video length.
        actions_per_minute: mean number of actions per minute of video.
        classes_per_video: 0 draws each action's class independently; ``k >= 1``
            draws ``min(k, num_classes)`` classes per video and its actions from
            them (1: one class per video, as most THUMOS14 videos, which
            video-level classifiers assume).
        min_action, max_action: action length bounds in seconds (0.5 to 10).
        median_action, action_sigma: log-normal of the action length.
        max_fill: at most this fraction of a video is covered by actions.
        overlap_prob: chance that an action starts before the previous ends.
        multi_label_prob: chance that an action's segment is annotated a second
            time with another class (Multi-THUMOS' multi-label ground truth);
            needs ``num_classes >= 2``.
        ambiguous_prob: chance that a long enough gap between actions holds
            an ``Ambiguous`` segment (a faint, partial action).
        empty_fraction: fraction of each subset's videos with no action.
        max_distractors: each video gets 0 to this many moving distractors.
        pixel_noise: std of the per-frame Gaussian pixel noise (0-255 scale).
        jitter_px: std of the camera jitter in pixels at 96 px (scaled with
            the shorter frame side).
        feat_dim: feature channels ``C``.
        feat_noise: std of the feature noise per channel.
        write_videos: False writes annotations and features only.
        crf, x264_preset, gop: H.264 encoder settings.
    """

    seed: int = 0
    num_train: int = 40
    num_test: int = 30
    num_classes: int = 5
    width: int = 96
    height: int = 96
    min_duration: float = 10.0
    max_duration: float = 30.0
    median_duration: float | None = None
    duration_sigma: float = 0.4
    actions_per_minute: float = 10.0
    classes_per_video: int = 0
    min_action: float = 0.5
    max_action: float = 10.0
    median_action: float = 2.5
    action_sigma: float = 0.6
    max_fill: float = 0.6
    overlap_prob: float = 0.05
    multi_label_prob: float = 0.0
    ambiguous_prob: float = 0.1
    empty_fraction: float = 0.1
    max_distractors: int = 2
    pixel_noise: float = 4.0
    jitter_px: float = 1.0
    feat_dim: int = 64
    feat_noise: float = 0.2
    write_videos: bool = True
    crf: int = 23
    x264_preset: str = "veryfast"
    gop: int = 60

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.num_classes <= len(CLASS_NAMES):
            problems.append(f"num_classes={self.num_classes} must be in [1, {len(CLASS_NAMES)}]")
        if self.width % 2 or self.height % 2 or self.width < 16 or self.height < 16:
            problems.append(f"size {self.width}x{self.height} must be even (yuv420p) and at least 16x16")
        if self.num_train < 0 or self.num_test < 0 or self.num_train + self.num_test == 0:
            problems.append(f"num_train={self.num_train}, num_test={self.num_test}: need >= 0 each and > 0 in total")
        if not 2.0 <= self.min_duration <= self.max_duration:
            problems.append(f"durations min={self.min_duration}, max={self.max_duration}: need 2 <= min <= max")
        if not 0.5 <= self.min_action <= self.max_action <= 10.0:
            problems.append(
                f"action lengths min={self.min_action}, max={self.max_action}: need 0.5 <= min <= max <= 10"
            )
        if self.min_action > self.min_duration * self.max_fill:
            problems.append(f"min_action={self.min_action} exceeds min_duration * max_fill; no action would fit")
        for name in ("max_fill", "overlap_prob", "multi_label_prob", "ambiguous_prob", "empty_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}={getattr(self, name)} must be in [0, 1]")
        for name in ("actions_per_minute", "pixel_noise", "jitter_px", "feat_noise", "duration_sigma", "action_sigma"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 0")
        if self.multi_label_prob > 0 and self.num_classes < 2:
            problems.append(f"multi_label_prob={self.multi_label_prob} needs num_classes >= 2 (a second class)")
        if self.classes_per_video < 0:
            problems.append(f"classes_per_video={self.classes_per_video} must be >= 0 (0: no limit)")
        if self.feat_dim < 8 or self.max_distractors < 0 or self.gop < 1:
            problems.append(
                f"feat_dim={self.feat_dim} (>= 8), max_distractors={self.max_distractors} (>= 0), gop={self.gop} (>= 1)"
            )
        if problems:
            raise ValueError("Invalid SyntheticSettings: " + "; ".join(problems))

    @property
    def class_names(self) -> tuple:
        """The class names in index order."""
        return CLASS_NAMES[: self.num_classes]

    def to_dict(self) -> Dict[str, Any]:
        """The settings as a JSON-compatible dict."""
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """SHA-256 of the settings and the generator version (hex)."""
        payload = json.dumps({"version": GENERATOR_VERSION, "settings": self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode("utf8")).hexdigest()


# THUMOS14 scale: 200 validation + 213 test videos, 20 classes, 320x180,
# median length about 155 s, about 6,400 actions in all.
PRESETS: Dict[str, Dict[str, Any]] = {
    "default": {},
    "thumos": dict(
        num_train=200,
        num_test=213,
        num_classes=20,
        width=320,
        height=180,
        min_duration=20.0,
        max_duration=900.0,
        median_duration=150.0,
        duration_sigma=0.7,
        actions_per_minute=5.2,
        ambiguous_prob=0.05,
        median_action=3.0,
        action_sigma=0.7,
        max_distractors=3,
    ),
    # Multi-THUMOS on the THUMOS14 videos: dense (about 21 actions a minute, about 10 classes a video),
    # overlapping actions, some segments annotated with two classes (about 1.5 labels per action frame),
    # no Ambiguous label; 20 classes here (Multi-THUMOS: 65).
    "multithumos": dict(
        num_train=200,
        num_test=213,
        num_classes=20,
        width=320,
        height=180,
        min_duration=20.0,
        max_duration=900.0,
        median_duration=150.0,
        duration_sigma=0.7,
        actions_per_minute=18.0,
        classes_per_video=11,
        median_action=2.0,
        action_sigma=0.7,
        max_fill=0.9,
        overlap_prob=0.6,
        multi_label_prob=0.35,
        ambiguous_prob=0.0,
        max_distractors=3,
    ),
    # EPIC-Kitchens-100 (egocentric kitchens, 495 training / 138 validation videos of 1 to 60 min,
    # median about 8 min): dense short actions (about 15 a minute, median 2 s) that often overlap,
    # no Ambiguous label. Write the EPIC files (verb and noun labels: class k is verb k // 2,
    # noun k % 3) with opentad.datasets.synthetic.layouts.generate_layout("epic", out).
    "epic": dict(
        num_train=495,
        num_test=138,
        num_classes=12,
        width=320,
        height=180,
        min_duration=60.0,
        max_duration=3600.0,
        median_duration=480.0,
        duration_sigma=0.8,
        actions_per_minute=15.0,
        median_action=2.0,
        action_sigma=0.8,
        max_fill=0.9,
        overlap_prob=0.3,
        ambiguous_prob=0.0,
        empty_fraction=0.0,
    ),
    # Ego4D Moment Queries: long clips (8 min each), many short moments, no Ambiguous label; 20
    # classes here (Ego4D-MQ: 110), fewer clips than Ego4D-MQ. Ego4D files:
    # opentad.datasets.synthetic.layouts.generate_layout("ego4d", out).
    "ego4d": dict(
        num_train=300,
        num_test=100,
        num_classes=20,
        width=320,
        height=180,
        min_duration=480.0,
        max_duration=480.0,
        actions_per_minute=8.0,
        median_action=2.5,
        action_sigma=0.8,
        overlap_prob=0.2,
        ambiguous_prob=0.0,
        empty_fraction=0.0,
    ),
    # ActivityNet-1.3 style (10,024 / 4,926 YouTube videos, 200 classes, about 1.5 actions a video
    # covering about a third of it each): few long actions of one class per video, none overlapping,
    # every video annotated, no Ambiguous label. Shorter than ActivityNet's (actions are at most 10 s
    # here); the ActivityNet configs resize every video to a fixed length anyway
    # (configs/_base_/datasets/synthetic/features_anet_resize.py: 128 steps).
    "anet": dict(
        num_train=400,
        num_test=200,
        num_classes=20,
        width=160,
        height=120,
        min_duration=10.0,
        max_duration=60.0,
        median_duration=25.0,
        duration_sigma=0.5,
        actions_per_minute=4.0,
        classes_per_video=1,
        min_action=2.0,
        max_action=10.0,
        median_action=7.0,
        action_sigma=0.4,
        max_fill=0.9,
        overlap_prob=0.0,
        ambiguous_prob=0.0,
        empty_fraction=0.0,
    ),
}


def settings_from_preset(preset: str = "default", overrides: Mapping[str, Any] | None = None) -> SyntheticSettings:
    """Settings of a named preset with some fields replaced.

    Args:
        preset: a key of :data:`PRESETS`.
        overrides: field name -> value; None values are ignored (so argparse
            defaults of None leave the preset's value).

    Raises:
        KeyError: unknown preset (the message lists the presets).
        TypeError: an override names no field of :class:`SyntheticSettings`.
        ValueError: the resulting settings are invalid.
    """
    if preset not in PRESETS:
        raise KeyError(f"Unknown synthetic preset {preset!r}; choose one of {sorted(PRESETS)}.")
    values = dict(PRESETS[preset])
    fields = {f.name for f in dataclasses.fields(SyntheticSettings)}
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise TypeError(f"Unknown synthetic setting {key!r}; valid settings: {sorted(fields)}.")
        if value is not None:
            values[key] = value
    return SyntheticSettings(**values)
