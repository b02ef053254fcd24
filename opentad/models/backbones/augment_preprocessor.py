"""Pixel normalisation preceded, in training, by the batched clip augmentation.

With the frame cache (``docs/data_pipeline.md``) the loader workers only
read uint8 frames at the cached resolution; the random crop, resize, flip,
ImgAug and ColorJitter of the recipe then run here, on the model's device,
as the first step of the backbone wrapper's forward pass. In eval mode
(validation, testing) frames are only normalised, like
:class:`~.data_preprocessor.ActionDataPreprocessor`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Sequence

import torch
from torch import Tensor

from opentad.registry import BACKBONES
from opentad.utils.misc import RandomStateful

from .data_preprocessor import ActionDataPreprocessor

if TYPE_CHECKING:  # torchvision and OpenCV are imported only when augmentation is configured
    from opentad.transforms.batch_augment import BatchClipAugment

__all__ = ["AugmentDataPreprocessor"]


@BACKBONES.register_module()
class AugmentDataPreprocessor(ActionDataPreprocessor, RandomStateful):
    """``ActionDataPreprocessor`` that augments uint8 clips with :class:`BatchClipAugment` while training.

    Config keys: those of ``ActionDataPreprocessor`` plus ``augment`` (the
    CPU transform configs to reproduce, e.g. ``[dict(type="mmaction.RandomResizedCrop"),
    dict(type="mmaction.Resize", scale=(160, 160), keep_ratio=False),
    dict(type="mmaction.Flip", flip_ratio=0.5), dict(type="mmaction.ImgAug",
    transforms="default"), dict(type="mmaction.ColorJitter")]``) and
    ``augment_seed`` (None: the run's seed) and ``augment_chunk_frames`` (frames
    augmented at once, 128 by default: a larger chunk trades memory for fewer
    kernel launches; ``tools/benchmark_augment.py`` measures both).

    Args:
        augment: the built augmentation, or None (then this is an ``ActionDataPreprocessor``).
        mean, std, to_rgb, format_shape: as ``ActionDataPreprocessor``.

    Raises:
        ValueError: ``augment`` with a format other than ``"NCTHW"``.
    """

    def __init__(
        self,
        *,
        augment: Optional["BatchClipAugment"] = None,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        to_rgb: bool = False,
        format_shape: str = "NCTHW",
    ):
        super().__init__(mean=mean, std=std, to_rgb=to_rgb, format_shape=format_shape)
        if augment is not None and format_shape != "NCTHW":
            raise ValueError(f"AugmentDataPreprocessor: augmentation needs format_shape='NCTHW', got {format_shape!r}")
        self.augment = augment

    @classmethod
    def from_config(
        cls,
        *,
        augment: Optional[Sequence[Mapping[str, Any]]] = None,
        augment_seed: Optional[int] = None,
        augment_chunk_frames: int = 128,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        to_rgb: bool = False,
        format_shape: str = "NCTHW",
    ) -> Dict[str, Any]:
        """Build the augmentation from its transform configs."""
        from opentad.transforms.batch_augment import BatchClipAugment

        if augment_chunk_frames < 1:
            raise ValueError(f"AugmentDataPreprocessor: augment_chunk_frames must be >= 1, got {augment_chunk_frames}")
        built = BatchClipAugment(
            transforms=augment, seed=augment_seed, chunk_frames=augment_chunk_frames
        ) if augment else None
        return dict(augment=built, mean=mean, std=std, to_rgb=to_rgb, format_shape=format_shape)

    def forward(self, frames: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Augment (training mode, uint8 ``[B, N, C, T, H, W]``), then normalise.

        Args:
            frames: the batch.
            dtype: dtype of the result (see :meth:`ActionDataPreprocessor.forward`).

        Returns:
            ``[B, N, C, T, H', W']`` in ``dtype``.

        Raises:
            TypeError: training with augmentation on frames that are not uint8
                (augment only frames the cached pipeline left untouched).
        """
        if self.training and self.augment is not None:
            if frames.dtype != torch.uint8:
                raise TypeError(
                    f"AugmentDataPreprocessor: training augmentation needs uint8 frames [B, N, C, T, H, W], got "
                    f"{frames.dtype}; use the cached pipeline (LoadCachedFrames, FormatShape, Collect) without "
                    "CPU augmentation"
                )
            with torch.autocast(device_type=frames.device.type, enabled=False):
                frames = self.augment(frames)
        return super().forward(frames, dtype=dtype)

    def random_state(self) -> Dict[str, Any]:
        """The augmentation's draw count (checkpoints keep it for an exact resume); ``{}`` without augmentation."""
        return self.augment.state_dict() if self.augment is not None else {}

    def load_random_state(self, state: Mapping[str, Any]) -> None:
        if self.augment is not None and state:
            self.augment.load_state_dict(state)

    def extra_repr(self) -> str:
        return f"augment={self.augment!r}" if self.augment is not None else ""
