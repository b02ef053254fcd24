"""The ``custom`` section of the end-to-end backbone wrapper's config, parsed and checked.

:class:`WrapperOptions` holds upstream's keys (``pretrain``, the pre- and
post-processing pipelines, ``norm_eval``, ``freeze_backbone``, temporal
checkpointing) and this project's memory keys, which become one
:class:`~opentad.models.memory.policy.MemoryPolicy`. The wrapper
(:mod:`.backbone_wrapper`) parses it in ``from_config``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal, Mapping, Optional, Sequence, Union

from torch import nn

from opentad.models.memory.policy import FROZEN_DTYPES, MemoryPolicy
from opentad.registry import ConfigError, bind

__all__ = ["WrapperOptions"]


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
        fused_residual: with ``frozen_dtype`` (default False; True in the g QLoRA configs): the adapters'
            ``up * gamma + x`` runs as one Triton kernel with the same rounding, where eager PyTorch writes two
            float32 tensors (:mod:`opentad.models.memory.fused_residual`; faster for ViT-g, slower for the
            launch-bound ViT-S: docs/qlora.md). Not part of upstream's keys.
        frozen_fp8: with ``frozen_dtype="bf16"`` (default False; **approximate**): True or ``"forward"``: the
            frozen 4-bit layers' forward products in fp8 e4m3 with row scales, their backward in bf16; ``"all"``:
            the backward products in fp8 too
            (:mod:`opentad.models.memory.fp8_matmul`; the change in synthetic mAP: docs/qlora.md). Not part of
            upstream's keys.
        fused_fp8_mlp: with ``frozen_fp8="all"`` (default False; approximate as it): the frozen MLPs' GELU and
            its backward fused with the fp8 products' row quantization, one pass over the rows
            (:mod:`opentad.models.memory.fp8_mlp`; docs/qlora.md). Not part of upstream's keys.
        fused_fp8_norms: with ``frozen_fp8="all"`` and ``compile_blocks`` (default False; approximate as it): the
            blocks' frozen layer norms fused with the fp8 row quantization of ``qkv`` and (with ``fused_fp8_mlp``)
            ``fc1``, one pass over the rows, in the compiled blocks (:mod:`opentad.models.memory.fp8_norm`;
            docs/qlora.md). Not part of upstream's keys.
        memory_plan: with ``memory_budget_gib``: run every block under this one plan instead of choosing
            (``"checkpoint+chunks4+offload+hold"``, ``"keep"``, ...: the names the budget's log line uses),
            still checked against the budget. To reproduce a benchmark row or pin a plan. Not part of
            upstream's keys.
        compile_blocks: ``torch.compile`` each transformer block: False (default), True, or a mode
            (``"default"``, ``"max-autotune-no-cudagraphs"``, ``"multi-kernel"``; the CUDA-graph modes are refused;
            :mod:`opentad.models.memory.compile`, docs/qlora.md). Not part of upstream's keys.
        cuda_graphs: in training on CUDA, replay the transformer blocks' forward and backward from two CUDA
            graphs captured after two eager steps (default False; for launch-bound small ViTs; offloading blocks
            offload inside the graphs; not with temporal checkpointing; :mod:`opentad.models.memory.cuda_graphs`,
            docs/qlora.md). Not part of upstream's keys.
        attention_kernels: ``"torch"`` (default): torch's order of attention backends; ``"cudnn"``: cuDNN's
            kernel first, process-wide (torch 2.9+ does so itself on sm90/sm100 cards; for older torch; docs/qlora.md;
            :func:`opentad.models.bricks.attention_backend.prefer_attention_kernels`). Not part of upstream's keys.

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
    frozen_fp8: Union[bool, str] = False
    fused_fp8_mlp: bool = False
    fused_fp8_norms: bool = False
    cuda_graphs: bool = False
    attention_kernels: Literal["torch", "cudnn"] = "torch"

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
            frozen_fp8=self.frozen_fp8,
            fused_fp8_mlp=self.fused_fp8_mlp,
            fused_fp8_norms=self.fused_fp8_norms,
            cuda_graphs=self.cuda_graphs,
            attention_kernels=self.attention_kernels,
        )
