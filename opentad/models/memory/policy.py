"""One object decides how a video backbone trades computation for memory.

Blocks and FFNs are plain modules. A :class:`MemoryPolicy` is built once,
from the backbone's ``with_cp`` and the wrapper's ``custom`` keys, and
applied to the built backbone from outside::

    config keys ──► MemoryPolicy ──apply_memory_policy(backbone, policy)──► frozen values stored in frozen_dtype
                        │                                                   FFNs run as FrozenMLP (frozen_mlp)
                        │                                                   backbone.set_memory_policy(policy)
                        ├─ run_backbone(backbone, frames): offloading, temporal checkpointing;
                        │      with memory_budget_gib, the planner's per-block plans (budget.py)
                        └─ run_block(block, x, grid): plain, checkpointed or chunked backward
                                                      (the block's plan, or the settings above);
                                                      the token stream kept in frozen_dtype

Every option but ``frozen_fp8`` (opt-in, approximate) changes where values
wait or when they are computed, never their arithmetic (``frozen_dtype``
rounds the frozen values once, when applied):
``tests/models/memory/test_policy.py`` pins the loss and gradients of a tiny
backbone under each option against the plain run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.utils.checkpoint as cp
from torch import Tensor, nn

from opentad.models.bricks.attention_backend import check_attention_kernels, prefer_attention_kernels
from opentad.models.bricks.vit import Block
from opentad.models.memory.budget import BudgetPlanner
from opentad.models.memory.chunked_residual import chunked_block_forward, residual_chunkable
from opentad.models.memory.apply import apply_memory_policy, store_frozen_in
from opentad.models.memory.compile import check_compile_blocks, rows_vary
from opentad.models.memory.cuda_graphs import BlockGraphs
from opentad.models.memory.fp8_matmul import check_mode, quantize_fp8_weights
from opentad.models.memory.graph_offload import staging
from opentad.models.memory.graph_rng import checkpoint_bound
from opentad.models.memory.offload import OffloadSavedTensors
from opentad.models.memory.planner import BlockPlan

logger = logging.getLogger(__name__)

__all__ = ["FROZEN_DTYPES", "MemoryPolicy", "apply_memory_policy", "store_frozen_in"]

#: config values of ``frozen_dtype``
FROZEN_DTYPES: Dict[Optional[str], Optional[torch.dtype]] = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclasses.dataclass(frozen=True)
class MemoryPolicy:
    """The memory options of one backbone.

    Args:
        checkpoint: recompute each block in backward (``use_reentrant=False``)
            whenever autograd records (``with_cp``).
        checkpoint_needs_input_grad: checkpoint only blocks whose input
            requires grad (upstream AdaTAD's rule; the first block with an
            adapter then keeps its activations).
        frozen_mlp: run frozen MLPs through
            :class:`~opentad.models.memory.frozen_mlp.FrozenMLP` (row chunks;
            False: autograd's MLP, upstream's memory behaviour). Not with
            ``compile_blocks``: the compiler cannot see into FrozenMLP's
            function, so compiled blocks keep autograd's MLP, whose bias,
            GELU and their backward it fuses.
        backward_chunks: > 1: recompute a checkpointed block's frozen
            attention and MLP this many row groups at a time
            (:mod:`~opentad.models.memory.chunked_residual`).
        offload_activations: keep what autograd saves in the backbone (the
            checkpointed blocks' inputs) in pinned host memory until
            backward (CUDA only, :mod:`~opentad.models.memory.offload`).
        frozen_dtype: store frozen floating-point values in this dtype and
            keep the token stream between blocks in it (None: as built).
        temporal_chunks: run the whole backbone checkpointed on this many
            chunks of its input (upstream's ``temporal_checkpointing``); None: off.
        temporal_chunk_dim: the dim of ``[B*N, C, T, H, W]`` to chunk.
        compile_blocks: ``torch.compile`` each block in place: False, True or a mode string (:mod:`.compile`).
        memory_budget_gib: choose ``checkpoint``, ``backward_chunks``,
            ``offload_activations`` and held dequantized weights per block, the
            fastest that fits this many GiB (:mod:`.budget`); None: as set above.
        stream_norms: with ``frozen_dtype``, the blocks' layer norms take and return the stream's dtype under
            autocast instead of a float32 round trip (:mod:`.stream_norm`; the same rounding).
        fused_residual: with ``frozen_dtype`` and without ``compile_blocks``, the adapters' scaled residual
            ``up * gamma + x`` runs as one Triton kernel returning the stream's bf16 (:mod:`.fused_residual`;
            the same rounding, bitwise, forward and backward). Off by default: faster for ViT-g, slower for the
            launch-bound ViT-S (docs/qlora.md).
        frozen_fp8: with ``frozen_dtype`` bf16, the frozen 4-bit layers' forward products (True or
            ``"forward"``), or their forward and backward products (``"all"``), run in fp8 e4m3 with row scales
            (:mod:`.fp8_matmul`). **Approximate**: the one option that changes results; off by default.
        fused_fp8_mlp: with ``frozen_fp8="all"``, each frozen MLP's GELU and its backward fused with the fp8
            row quantization of the product after them (:mod:`.fp8_mlp`, one pass over the rows instead of
            writing the bf16 activation and reading it again): in compiled blocks, and eagerly inside
            ``frozen_mlp``'s chunked MLP (not with ``frozen_mlp=False``). Approximate as ``frozen_fp8``; a value
            moves by at most one e4m3 step.
        fused_fp8_norms: with ``frozen_fp8="all"`` and ``compile_blocks``, each block's frozen layer norms fused
            with the fp8 row quantization of the product after them (``norm1`` with ``qkv``; ``norm2`` with
            ``fc1``, where ``fused_fp8_mlp`` makes the MLP fp8's own), one pass over the rows, in the compiled
            blocks (:mod:`.fp8_norm_block`). Approximate as ``frozen_fp8``; a value moves by at most one e4m3
            step (on CUDA; on the CPU, whose bf16 layer norm keeps bf16 statistics, the fused norm's float32
            backward moves gradients further from the unfused one's: docs/qlora.md).
        cuda_graphs: in training on CUDA, replay the blocks' forward and backward from two CUDA graphs (captured
            after a few eager steps; :mod:`.cuda_graphs`): for launch-bound small ViTs. Offloading blocks offload
            inside the graphs (:mod:`.graph_offload`). Not with temporal checkpointing.
        attention_kernels: ``"torch"`` (default): the order of ``scaled_dot_product_attention`` backends is left
            as it is (torch's, unless a ``"cudnn"`` policy ran earlier in the process: the order is process-wide);
            ``"cudnn"``: cuDNN's kernel first, set once per process before the first CUDA forward, before any
            block is profiled or compiled (compiled graphs keep the kernel they were traced with). Torch 2.9+
            does so itself on sm90/sm100 cards (H100: cuDNN ran in every profiled step; docs/qlora.md;
            :func:`~opentad.models.bricks.attention_backend.prefer_attention_kernels`).
        memory_plan: with ``memory_budget_gib``, every block runs this one plan, named as the budget's log
            names plans (``"checkpoint+chunks4+offload+hold"``, ``"keep"``; :meth:`.BlockPlan.from_name`),
            still checked against the budget: to reproduce a benchmark row or pin a plan. None: chosen.

    Raises:
        ValueError: ``fused_fp8_mlp`` or ``fused_fp8_norms`` without ``frozen_fp8="all"``, ``fused_fp8_norms``
            without ``compile_blocks``; ``backward_chunks`` or ``temporal_chunks``
            not an int >= 1, a budget that is not
            positive, a budget with ``temporal_chunks``, a ``memory_plan`` that is not a plan name or has no
            budget, ``cuda_graphs`` with ``temporal_chunks``, or an ``attention_kernels`` not listed above.
    """

    checkpoint: bool = False
    checkpoint_needs_input_grad: bool = False
    frozen_mlp: bool = True
    backward_chunks: int = 1
    offload_activations: bool = False
    frozen_dtype: Optional[torch.dtype] = None
    temporal_chunks: Optional[int] = None
    temporal_chunk_dim: int = 0
    memory_budget_gib: Optional[float] = None
    compile_blocks: Union[bool, str] = False
    memory_plan: Optional[str] = None
    stream_norms: bool = True
    fused_residual: bool = False
    frozen_fp8: Union[bool, str] = False
    fused_fp8_mlp: bool = False
    fused_fp8_norms: bool = False
    cuda_graphs: bool = False
    attention_kernels: str = "torch"
    planner: Optional[BudgetPlanner] = dataclasses.field(default=None, compare=False, repr=False)
    graphs: Optional[BlockGraphs] = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_compile_blocks(self.compile_blocks)
        check_attention_kernels(self.attention_kernels, owner="MemoryPolicy: ")
        for key in ("backward_chunks", "temporal_chunks"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"MemoryPolicy: {key}={value!r} must be an int >= 1")
        check_mode(self.frozen_fp8)
        if self.frozen_fp8 and self.frozen_dtype != torch.bfloat16:
            raise ValueError(f"MemoryPolicy: frozen_fp8={self.frozen_fp8!r} computes the frozen products in fp8 from "
                             f"bf16 inputs; it needs frozen_dtype bf16, got {self.frozen_dtype}")
        for key, fused in (("fused_fp8_mlp", "GELU"), ("fused_fp8_norms", "the layer norms")):
            if getattr(self, key) and self.frozen_fp8 != "all":
                raise ValueError(f"MemoryPolicy: {key}=True fuses {fused} with the fp8 products of both "
                                 f"directions; it needs frozen_fp8='all', got frozen_fp8={self.frozen_fp8!r}")
        if self.fused_fp8_norms and self.compile_blocks is False:
            raise ValueError("MemoryPolicy: fused_fp8_norms=True fuses the layer norms inside compiled blocks; it "
                             "needs compile_blocks (True or a mode), got compile_blocks=False")
        budget = self.memory_budget_gib
        pinned = None if self.memory_plan is None else BlockPlan.from_name(self.memory_plan)
        self._check_graphs()
        if budget is None:
            if pinned is not None:
                raise ValueError(f"MemoryPolicy: memory_plan={self.memory_plan!r} pins the budget's plan of every "
                                 "block; it needs memory_budget_gib")
            object.__setattr__(self, "planner", None)
            return
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
            raise ValueError(f"MemoryPolicy: memory_budget_gib={budget!r} must be a number of GiB > 0")
        if self.temporal_chunks is not None:
            raise ValueError("MemoryPolicy: memory_budget_gib plans per block; it cannot be combined with "
                             "temporal checkpointing (temporal_checkpointing=True)")
        if self.planner is None or not self.planner.serves(budget_gib=budget, chunks=self.backward_chunks,
                                                           pinned=pinned):
            object.__setattr__(self, "planner", BudgetPlanner(budget_gib=float(budget), chunks=self.backward_chunks,
                                                              pinned=pinned))

    def _check_graphs(self) -> None:
        """Refuse ``cuda_graphs`` with what cannot be captured; build or drop the graphs' cache."""
        if not self.cuda_graphs:
            object.__setattr__(self, "graphs", None)
            return
        if not isinstance(self.cuda_graphs, bool):
            raise ValueError(f"MemoryPolicy: cuda_graphs={self.cuda_graphs!r} must be True or False")
        if self.temporal_chunks is not None:
            raise ValueError("MemoryPolicy: cuda_graphs=True cannot be combined with temporal checkpointing "
                             "(temporal_checkpointing=True): the graphs capture the blocks, not a checkpoint of the "
                             "whole backbone around them")
        settings = self._settings()
        if self.graphs is None or self.graphs.settings not in (None, settings):
            object.__setattr__(self, "graphs", BlockGraphs())  # a replaced policy: the old graphs run other plans
        self.graphs.settings = settings

    def _settings(self) -> Tuple[Any, ...]:
        """The policy's settings (its compared fields): graphs captured under other settings are not reused."""
        return tuple((f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.compare)

    def stream(self, x: Tensor) -> Tensor:
        """The token stream between blocks, in ``frozen_dtype`` when set."""
        return x if self.frozen_dtype is None else x.to(self.frozen_dtype)

    def stream_dtype(self, frames: Tensor) -> torch.dtype:
        """The dtype the blocks compute in for ``frames``: autocast's when on, else ``frozen_dtype`` or theirs."""
        device = frames.device.type
        if torch.is_autocast_enabled(device):
            return torch.get_autocast_dtype(device)
        return self.frozen_dtype or frames.dtype

    def run_block(self, block: Block, x: Tensor, grid: Tuple[int, int]) -> Tensor:
        """``block(x, grid)`` as the policy says; input and output in the stream dtype.

        Args:
            block: a transformer block.
            x: tokens ``[B, N, C]``.
            grid: the spatial token grid ``(h, w)``.

        Returns:
            ``[B, N, C]``.
        """
        plan = self.planner.plan_of(block) if self.planner is not None else None
        with self._offloading(plan):
            if plan is None:
                return self.execute(block, x, grid, checkpoint=self.checkpoint, chunks=self.backward_chunks)
            return self.execute(block, x, grid, checkpoint=plan.checkpoint, chunks=plan.backward_chunks)

    def _offloading(self, plan: Optional[BlockPlan]):
        """Where one block's saved tensors go: staged for the CUDA graphs being captured (:mod:`.graph_offload`),
        or the planner's offloading context for an offloading plan; with the fixed settings
        :meth:`run_backbone`'s context around the whole backbone offloads."""
        staged = staging()
        if staged is not None:
            return staged.block(plan.offload if plan is not None else self.offload_activations)
        if plan is not None and plan.offload and self.planner.offload is not None:
            return self.planner.offload
        return contextlib.nullcontext()

    def run_blocks(self, blocks: Any, x: Tensor, grid: Tuple[int, int]) -> Tensor:
        """The blocks in order (each as :meth:`run_block`), replayed from CUDA graphs with ``cuda_graphs``.

        Args:
            blocks: the blocks.
            x: tokens ``[B, N, C]``.
            grid: the spatial token grid ``(h, w)``.

        Returns:
            ``[B, N, C]``.
        """
        if self.frozen_fp8 and self.compile_blocks is not False:  # compiled blocks read the fp8 copies as made
            for block in blocks:  # remade here for a changed weight (the backbone may be called directly)
                quantize_fp8_weights(block, x.device)
        if self.graphs is not None:
            plans = None if self.planner is None else tuple(self.planner.plan_of(b) for b in blocks)
            return self.graphs.run(blocks, x, grid, self.run_block, signature=plans)
        for block in blocks:
            x = self.run_block(block, x, grid)
        return x

    def execute(self, block: Block, x: Tensor, grid: Tuple[int, int], *, checkpoint: bool, chunks: int) -> Tensor:
        """``block(x, grid)``, checkpointed (in ``chunks`` row groups when > 1) or not; see :meth:`run_block`."""
        x = rows_vary(self.stream(x), block)  # compiled blocks: one graph for every row count
        recording = checkpoint and torch.is_grad_enabled()
        if not recording or (self.checkpoint_needs_input_grad and not x.requires_grad):
            return self.stream(block(x, grid))
        if residual_chunkable(block, x, chunks):
            return self.stream(chunked_block_forward(block, x, grid, chunks))
        return self.stream(checkpoint_bound(block, block, x, grid))

    def run_backbone(self, backbone: nn.Module, frames: Tensor) -> Any:
        """``backbone(frames)`` with offloading and temporal checkpointing as the policy says.

        Args:
            backbone: the video backbone.
            frames: ``[B*N, C, T, H, W]``.

        Returns:
            what the backbone returns (a tensor, or a list of them), chunks concatenated.
        """
        # before the planner profiles (and compiles) the blocks: a compiled graph keeps the kernel it was traced with
        prefer_attention_kernels(frames.device, self.attention_kernels)
        if self.frozen_fp8:  # before the plan measures what stays on the device
            quantize_fp8_weights(backbone, frames.device)
        if self.planner is not None and torch.is_grad_enabled():
            self.planner.prepare(backbone, frames, self)
        offload = self.offload_activations and self.planner is None and torch.is_grad_enabled() and frames.is_cuda
        with OffloadSavedTensors() if offload else contextlib.nullcontext():
            if self.temporal_chunks is None:
                return backbone(frames)
            dim = self.temporal_chunk_dim
            outs = [cp.checkpoint(backbone, c, use_reentrant=False) for c in frames.chunk(self.temporal_chunks, dim)]
        if isinstance(outs[0], (tuple, list)):
            return [torch.cat([o[i] for o in outs], dim=dim) for i in range(len(outs[0]))]
        return torch.cat(outs, dim=dim)
