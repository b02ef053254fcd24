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
from typing import Any, Callable, Dict, Literal, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from opentad.models.backbones.pretrained import load_pretrained
from opentad.models.backbones.video_backbone import VideoBackbone
from opentad.models.memory.policy import FROZEN_DTYPES, MemoryPolicy, apply_memory_policy
from opentad.registry import BACKBONES, ConfigError, bind, build

logger = logging.getLogger(__name__)

__all__ = ["WrapperOptions", "VideoRecognizer", "BackboneWrapper"]

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)

@dataclasses.dataclass(frozen=True)
class WrapperOptions:
    """The ``custom`` section of the wrapper config (upstream keys).

    Args:
        pretrain: checkpoint to load into the backbone, or None for random weights.
        pretrained: accepted for upstream's end-to-end ETAD config and, as by
            upstream's wrapper, not read (its backbone loads its own
            ``pretrained``); a warning says so when it names another file.
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
            :mod:`opentad.models.memory.offload`). Not part of upstream's keys.
        backward_chunks: recompute each block's frozen attention and MLP in
            backward this many row groups (clips) at a time
            (:mod:`opentad.models.memory.chunked_residual`); None or 1: the
            whole block at once. Not part of upstream's keys.
        memory_budget_gib: the peak memory (GiB) a training step may use:
            checkpointing, the chunked backward, offloading and dequantized
            weight copies are then chosen per block, the fastest plan that
            fits (:mod:`opentad.models.memory.budget`; docs/qlora.md).
            Not part of upstream's keys.
        stream_norms: with ``frozen_dtype`` (default True): the blocks' layer norms take and return the
            stream's dtype under autocast, where autocast would run them in float32 and cast back (the same
            rounding, fewer bytes moved: :mod:`opentad.models.memory.stream_norm`). Not part of upstream's keys.
        fused_residual: with ``frozen_dtype`` (default False): the adapters' ``up * gamma + x`` runs as one
            Triton kernel with the same rounding, where eager PyTorch writes two float32 tensors
            (:mod:`opentad.models.memory.fused_residual`; not yet measured on a GPU). Not part of upstream's keys.
        memory_plan: with ``memory_budget_gib``: run every block under this one plan instead of choosing
            (``"checkpoint+chunks4+offload+hold"``, ``"keep"``, ...: the names the budget's log line uses),
            still checked against the budget. To reproduce a benchmark row or pin a plan. Not part of
            upstream's keys.
        compile_blocks: ``torch.compile`` each transformer block: False (default), True, or a mode
            (``"default"``, ``"max-autotune-no-cudagraphs"``; the CUDA-graph modes are refused;
            :mod:`opentad.models.memory.compile`, docs/qlora.md). Not part of upstream's keys.

    The memory keys become one :class:`~opentad.models.memory.policy.MemoryPolicy`
    (:meth:`memory_policy`).
    """

    pretrain: Optional[str] = None
    pretrained: Optional[str] = None
    pre_processing_pipeline: Optional[Sequence[Mapping[str, Any]]] = None
    post_processing_pipeline: Optional[Sequence[Mapping[str, Any]]] = None
    norm_eval: bool = True
    freeze_backbone: bool = False
    temporal_checkpointing: bool = False
    temporal_checkpointing_chunk_num: Optional[int] = None
    temporal_checkpointing_chunk_dim: Optional[int] = None
    frozen_dtype: Optional[Literal["bf16", "fp16"]] = None
    offload_activations: bool = False
    backward_chunks: Optional[int] = None
    memory_budget_gib: Optional[float] = None
    compile_blocks: Union[bool, str] = False
    memory_plan: Optional[str] = None
    stream_norms: bool = True
    fused_residual: bool = False

    @classmethod
    def from_mapping(cls, custom: Optional[Mapping[str, Any]]) -> "WrapperOptions":
        """Parse ``custom``.

        Raises:
            ConfigError: an unknown key (valid keys listed), a value of the wrong type, ``backward_chunks``
                below 1, or temporal checkpointing without chunk number and dim.
        """
        options = bind(cls, custom, path="backbone custom")
        try:
            options.memory_policy(nn.Module())
        except ValueError as error:
            raise ConfigError(f"backbone custom: {error}") from None
        if options.temporal_checkpointing and (
            options.temporal_checkpointing_chunk_num is None or options.temporal_checkpointing_chunk_dim is None
        ):
            raise ConfigError(
                "backbone custom: temporal_checkpointing needs temporal_checkpointing_chunk_num and "
                "temporal_checkpointing_chunk_dim"
            )
        return options

    def memory_policy(self, backbone: nn.Module) -> MemoryPolicy:
        """The policy of these options for ``backbone`` (its own ``memory_policy``, e.g. ``with_cp``, as the base)."""
        return dataclasses.replace(
            getattr(backbone, "memory_policy", MemoryPolicy()),
            frozen_dtype=FROZEN_DTYPES[self.frozen_dtype],
            offload_activations=self.offload_activations,
            backward_chunks=1 if self.backward_chunks is None else self.backward_chunks,
            temporal_chunks=self.temporal_checkpointing_chunk_num if self.temporal_checkpointing else None,
            temporal_chunk_dim=self.temporal_checkpointing_chunk_dim or 0,
            memory_budget_gib=self.memory_budget_gib,
            compile_blocks=self.compile_blocks,
            memory_plan=self.memory_plan,
            stream_norms=self.stream_norms,
            fused_residual=self.fused_residual,
        )


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
