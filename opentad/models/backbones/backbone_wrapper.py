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
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import torch
import torch.utils.checkpoint as cp
from torch import Tensor, nn

from opentad.models.backbones.pretrained import load_pretrained
from opentad.models.backbones.vit import VideoBackbone
from opentad.models.bricks.vit import Block
from opentad.models.utils.offload import OffloadSavedTensors
from opentad.registry import BACKBONES, ConfigError, build

logger = logging.getLogger(__name__)

__all__ = ["WrapperOptions", "VideoRecognizer", "BackboneWrapper", "FROZEN_DTYPES", "store_frozen_in"]

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)

#: values of ``custom.frozen_dtype``
FROZEN_DTYPES = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}


def store_frozen_in(module: nn.Module, dtype: torch.dtype) -> int:
    """Cast ``module``'s frozen floating-point parameters and floating-point buffers to ``dtype`` in place.

    Parameters that require grad keep their dtype (float32 master weights
    for the optimizer); integer tensors (quantized weights) are untouched.

    Returns:
        the number of elements cast.
    """
    count = 0
    for sub in module.modules():
        for name, param in sub.named_parameters(recurse=False):
            if not param.requires_grad and param.is_floating_point() and param.dtype != dtype:
                param.data = param.data.to(dtype)
                count += param.numel()
        for name, buf in sub.named_buffers(recurse=False):
            if buf is not None and buf.is_floating_point() and buf.dtype != dtype:
                sub._buffers[name] = buf.to(dtype)
                count += buf.numel()
    return count


@dataclasses.dataclass(frozen=True)
class WrapperOptions:
    """The ``custom`` section of the wrapper config (upstream keys).

    Args:
        pretrain: checkpoint to load into the backbone, or None for random weights.
        pre_processing_pipeline: transforms on ``dict(frames=[B, N, C, T, H, W])``.
        post_processing_pipeline: transforms on ``dict(feats=[B, N, ...])``, ending at ``[B, C, T]``.
        norm_eval: freeze normalisation layers (and keep batch norms in eval mode).
        freeze_backbone: freeze the whole backbone and run it without autograd.
        temporal_checkpointing: run the backbone in checkpointed chunks.
        temporal_checkpointing_chunk_num: number of chunks.
        temporal_checkpointing_chunk_dim: dim of ``[B*N, C, T, H, W]`` to chunk (0 or 2).
        frozen_dtype: ``"bf16"`` or ``"fp16"``: store the frozen floating-point
            parameters and buffers of the backbone in this dtype (the
            trainable ones stay float32) and feed it frames normalised into
            it; the backbone then runs under autocast of that dtype (turned on
            here if ``solver.amp`` did not). None keeps float32, as upstream.
            Not part of upstream's keys (docs/qlora.md).
        offload_activations: keep the checkpointed blocks' inputs in pinned
            host memory between forward and backward (CUDA only; see
            :mod:`opentad.models.utils.offload`). Not part of upstream's keys.
        backward_chunks: recompute each block's frozen attention and MLP in
            backward this many row groups (clips) at a time
            (:mod:`opentad.models.bricks.chunked_residual`); None or 1: the
            whole block at once. Not part of upstream's keys.
    """

    pretrain: Optional[str] = None
    pre_processing_pipeline: Optional[Sequence[Mapping[str, Any]]] = None
    post_processing_pipeline: Optional[Sequence[Mapping[str, Any]]] = None
    norm_eval: bool = True
    freeze_backbone: bool = False
    temporal_checkpointing: bool = False
    temporal_checkpointing_chunk_num: Optional[int] = None
    temporal_checkpointing_chunk_dim: Optional[int] = None
    frozen_dtype: Optional[str] = None
    offload_activations: bool = False
    backward_chunks: Optional[int] = None

    @classmethod
    def from_mapping(cls, custom: Optional[Mapping[str, Any]]) -> "WrapperOptions":
        """Parse ``custom``.

        Raises:
            ConfigError: an unknown key (valid keys listed), or temporal
                checkpointing without chunk number and dim.
        """
        custom = dict(custom or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in custom if k not in valid]
        if unknown:
            raise ConfigError(f"backbone custom: unknown key(s) {unknown}. Valid keys: {valid}")
        options = cls(**custom)
        if options.frozen_dtype not in FROZEN_DTYPES:
            raise ConfigError(
                f"backbone custom: frozen_dtype={options.frozen_dtype!r} is not one of {list(FROZEN_DTYPES)}"
            )
        if options.backward_chunks is not None and (
            isinstance(options.backward_chunks, bool) or not isinstance(options.backward_chunks, int)
            or options.backward_chunks < 1
        ):
            raise ConfigError(f"backbone custom: backward_chunks={options.backward_chunks!r} must be an int >= 1 or None")
        if options.temporal_checkpointing and (
            options.temporal_checkpointing_chunk_num is None or options.temporal_checkpointing_chunk_dim is None
        ):
            raise ConfigError(
                "backbone custom: temporal_checkpointing needs temporal_checkpointing_chunk_num and "
                "temporal_checkpointing_chunk_dim"
            )
        return options


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
        if options.pretrain is not None:
            load_pretrained(self.model, options.pretrain)
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
        from opentad.datasets.transforms.formatting import Compose  # the datasets package is heavy

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
        if self.options.frozen_dtype is not None:
            cast = store_frozen_in(backbone, FROZEN_DTYPES[self.options.frozen_dtype])
            if isinstance(backbone, VideoBackbone):
                backbone.stream_dtype = FROZEN_DTYPES[self.options.frozen_dtype]
            logger.info("backbone: %d frozen values stored as %s", cast, self.options.frozen_dtype)
        if self.options.backward_chunks is not None:
            for module in backbone.modules():
                if isinstance(module, Block):
                    module.backward_chunks = self.options.backward_chunks
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        logger.info(
            "backbone: %d of %d parameters train (freeze_backbone=%s, norm_eval=%s)",
            trainable,
            total,
            self.freeze_backbone,
            self.norm_eval,
        )

    def train(self, mode: bool = True) -> "BackboneWrapper":
        """Switch modes; with ``norm_eval`` normalisation layers stay in eval mode."""
        super().train(mode)
        if self.norm_eval:
            for m in self.modules():
                if isinstance(m, _NORMS):
                    m.eval()
        return self

    def _run_backbone(self, frames: Tensor) -> Any:
        offload = self.options.offload_activations and torch.is_grad_enabled() and frames.is_cuda
        with OffloadSavedTensors() if offload else contextlib.nullcontext():
            return self._run_backbone_chunks(frames)

    def _run_backbone_chunks(self, frames: Tensor) -> Any:
        if not self.options.temporal_checkpointing:
            return self.model.backbone(frames)
        dim = self.options.temporal_checkpointing_chunk_dim
        chunks = torch.chunk(frames, self.options.temporal_checkpointing_chunk_num, dim=dim)
        outs = [cp.checkpoint(self.model.backbone, c, use_reentrant=False) for c in chunks]
        if isinstance(outs[0], (tuple, list)):
            return [torch.cat([o[i] for o in outs], dim=dim) for i in range(len(outs[0]))]
        return torch.cat(outs, dim=dim)

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
        low = FROZEN_DTYPES[self.options.frozen_dtype]
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
            feats = self._run_backbone(frames)
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
