"""What the synthetic ViT pretraining does (:mod:`opentad.apis.synthetic_pretrain`): its settings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["PretrainSettings"]


@dataclass(frozen=True)
class PretrainSettings:
    """What the pretraining does (the architecture comes from the detection config).

    Attributes:
        seed: seed of the pretraining videos and of training (the detection
            dataset's videos use their own seed; these never overlap them).
        num_videos: training videos rendered. Many short videos, not a few
            long ones: each video has its own background and distractors, and
            a few dozen are memorised rather than generalised from.
        num_val_videos: held-out videos for the accuracy in the log.
        min_duration, max_duration: video length bounds in seconds.
        render_size: frames are rendered at this size and resized to the
            ViT's ``img_size`` as the detection pipeline resizes them
            (bilinear, no antialiasing); None renders at ``img_size``. (Rendering
            at the detection videos' 96 px and resizing was measured and did
            not help: docs/synthetic_data.md.)
        num_classes: action classes (the first ``K`` synthetic classes).
        actions_per_minute: action density of the pretraining videos.
        steps, batch_size: optimisation steps and clips per step.
        lr, weight_decay: AdamW; the learning rate warms up linearly over
            ``warmup_steps`` and then follows a cosine to zero.
        warmup_steps: see ``lr``.
        token_weight: weight of the per-token loss beside the per-tubelet one.
        token_threshold: least share of a token's cell an action's objects
            must cover for the token to take the action's label.
    """

    seed: int = 1000
    num_videos: int = 300
    num_val_videos: int = 16
    min_duration: float = 10.0
    max_duration: float = 14.0
    render_size: Optional[int] = None
    num_classes: int = 5
    actions_per_minute: float = 16.0
    steps: int = 2000
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    token_weight: float = 5.0
    token_threshold: float = 0.05

    def __post_init__(self) -> None:
        if self.num_videos < 1 or self.num_val_videos < 0 or self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"PretrainSettings: counts must be positive, got {self}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError(f"PretrainSettings: warmup_steps={self.warmup_steps} must be in [0, steps={self.steps}]")
