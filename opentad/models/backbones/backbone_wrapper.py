"""The end-to-end backbone wrapper: frames in, ``[B, C, T]`` features out.

Upstream configs describe the video backbone as an mmaction2 recognizer::

    backbone=dict(
        type="mmaction.Recognizer3D",
        backbone=dict(type="VisionTransformerAdapter", ...),
        data_preprocessor=dict(type="mmaction.ActionDataPreprocessor", mean=..., std=..., format_shape="NCTHW"),
        custom=dict(pretrain=..., pre_processing_pipeline=[...], post_processing_pipeline=[...],
                    norm_eval=..., freeze_backbone=...),
    )

:class:`BackboneWrapper` (also registered as ``Recognizer3D`` and
``mmaction.Recognizer3D``) builds that without mmaction2. Its ``model``
attribute holds ``backbone`` and ``data_preprocessor`` so parameter names
read as upstream's: ``backbone.model.backbone.blocks.0.adapter.down_proj.weight``
inside a detector.

Everything about training is settled at build time, in this order: load
``pretrain`` (or warn once that the weights are random), call the backbone's
``on_weights_loaded()`` and ``freeze()`` hooks, freeze normalisation layers
(``norm_eval``), freeze everything (``freeze_backbone``).

The ``custom`` section is parsed by
:class:`~opentad.models.backbones.wrapper_options.WrapperOptions`
(importable from here as before).
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from opentad.models.backbones.pretrained import load_pretrained
from opentad.models.backbones.video_backbone import VideoBackbone
from opentad.models.backbones.wrapper_options import WrapperOptions
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from opentad.registry import BACKBONES, build

logger = logging.getLogger(__name__)

__all__ = ["WrapperOptions", "VideoRecognizer", "BackboneWrapper"]

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)


class VideoRecognizer(nn.Module):
    """Container standing in for mmaction2's ``Recognizer3D``: ``backbone`` + ``data_preprocessor``."""

    def __init__(self, backbone: nn.Module, data_preprocessor: Optional[nn.Module] = None):
        super().__init__()
        self.backbone = backbone
        self.data_preprocessor = data_preprocessor


@BACKBONES.register_module(name=["BackboneWrapper", "Recognizer3D", "mmaction.Recognizer3D"])
class BackboneWrapper(nn.Module):
    """Normalise, reshape, run the video backbone and pool to ``[B, C, T]``.

    Args:
        backbone: the video backbone (``[B', 3, T', H, W] -> features``).
        data_preprocessor: pixel normalisation, or None (frames only cast to float32).
        options: the parsed ``custom`` section.

    Use :meth:`from_config` keys in configs: ``backbone``, ``data_preprocessor``, ``custom``.
    """

    def __init__(self, *, backbone: nn.Module, data_preprocessor: Optional[nn.Module] = None, options: WrapperOptions):
        super().__init__()
        self.model = VideoRecognizer(backbone, data_preprocessor)
        self.options = options
        self.norm_eval = options.norm_eval
        self.freeze_backbone = options.freeze_backbone
        self.pre_processing_pipeline = self._compose(options.pre_processing_pipeline)
        self.post_processing_pipeline = self._compose(options.post_processing_pipeline)
        own = getattr(backbone, "pretrained", None)  # a backbone that loads its own weights (ResNet2Plus1d_TSP)
        if options.pretrained is not None and options.pretrained != own:
            logger.warning("backbone custom.pretrained=%s is not read (upstream's wrapper reads custom.pretrain)",
                           options.pretrained)
        if options.pretrain is not None:
            load_pretrained(self.model, options.pretrain)
        elif isinstance(own, str):
            logger.info("backbone %s: weights from its own pretrained=%s", type(backbone).__name__, own)
        else:
            logger.warning(
                "backbone %s: no pretrain checkpoint given (custom.pretrain=None); its weights are random",
                type(backbone).__name__,
            )
        self._settle_trainable()

    @classmethod
    def from_config(
        cls,
        *,
        backbone: Mapping[str, Any],
        data_preprocessor: Optional[Mapping[str, Any]] = None,
        custom: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Any]:
        """Build the sub-modules from config dicts (all from :data:`BACKBONES`)."""
        return dict(
            backbone=build(backbone, BACKBONES),
            data_preprocessor=build(data_preprocessor, BACKBONES),
            options=WrapperOptions.from_mapping(custom),
        )

    @staticmethod
    def _compose(pipeline: Optional[Sequence[Mapping[str, Any]]]) -> Optional[Callable]:
        if pipeline is None:
            return None
        from opentad.transforms.formatting import Compose

        return Compose(pipeline)

    def _settle_trainable(self) -> None:
        """Decide once which parameters train (see the module docstring)."""
        backbone = self.model.backbone
        if isinstance(backbone, VideoBackbone):
            backbone.on_weights_loaded()
            backbone.freeze()
        if self.norm_eval:
            for m in self.modules():
                if isinstance(m, _NORMS):
                    m.requires_grad_(False)
        if self.freeze_backbone:
            self.requires_grad_(False)
        cast = self.set_memory_policy(self.options.memory_policy(backbone))
        if cast:
            logger.info("backbone: %d frozen values stored as %s", cast, self.options.frozen_dtype)
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        logger.info(
            "backbone: %d of %d parameters train (freeze_backbone=%s, norm_eval=%s)",
            trainable,
            total,
            self.freeze_backbone,
            self.norm_eval,
        )

    def set_memory_policy(self, policy: MemoryPolicy) -> int:
        """Run the backbone as ``policy`` says (:func:`~opentad.models.memory.policy.apply_memory_policy`).

        Returns:
            the number of frozen values cast to ``policy.frozen_dtype``.
        """
        self.memory = policy
        return apply_memory_policy(self.model.backbone, policy)

    def train(self, mode: bool = True) -> "BackboneWrapper":
        """Switch modes; with ``norm_eval`` normalisation layers stay in eval mode."""
        super().train(mode)
        if self.norm_eval:
            for m in self.modules():
                if isinstance(m, _NORMS):
                    m.eval()
        return self

    def _pool(self, feats: Tensor, batches: int, clips: int) -> Tensor:
        feats = feats.unflatten(0, (batches, clips))
        if self.post_processing_pipeline is not None:
            feats = self.post_processing_pipeline(dict(feats=feats))["feats"]
        return feats

    def forward(self, frames: Tensor, masks: Optional[Tensor] = None) -> Tensor:
        """Frames to features.

        Args:
            frames: ``[B, N, C, T, H, W]`` (uint8 or float; ``N`` clips).
            masks: ``[B, T_out]`` bool, True on valid positions, or None.

        Returns:
            float32 features, ``[B, C, T_out]`` with the upstream pipelines
            (zeroed where ``masks`` is False).

        Raises:
            ValueError: ``masks`` does not match the features' temporal length.
        """
        low = self.memory.frozen_dtype
        if low is not None and not torch.is_autocast_enabled(frames.device.type):
            # float32 trainables meet low-precision frozen values: autocast, whatever solver.amp says
            with torch.autocast(frames.device.type, dtype=low):
                return self.forward(frames, masks)
        dtype = torch.float32 if low is None else low
        if self.model.data_preprocessor is not None:
            frames = self.model.data_preprocessor(frames, dtype=dtype)
        else:
            frames = frames.to(dtype)
        if self.pre_processing_pipeline is not None:
            frames = self.pre_processing_pipeline(dict(frames=frames))["frames"]
        batches, clips = frames.shape[:2]
        frames = frames.flatten(0, 1).contiguous()
        with torch.no_grad() if self.freeze_backbone else contextlib.nullcontext():
            feats = self.memory.run_backbone(self.model.backbone, frames)
        if isinstance(feats, (tuple, list)):
            feats = torch.cat([self._pool(f, batches, clips) for f in feats], dim=1)
        else:
            feats = self._pool(feats, batches, clips)
        if masks is not None and feats.dim() == 3:
            if masks.shape != (feats.shape[0], feats.shape[2]):
                raise ValueError(
                    f"BackboneWrapper: masks {tuple(masks.shape)} do not match features {tuple(feats.shape)} "
                    f"(check the post_processing_pipeline's Interpolate size against the window size)"
                )
            feats = feats * masks.unsqueeze(1).to(feats.dtype)
        return feats.to(torch.float32)
