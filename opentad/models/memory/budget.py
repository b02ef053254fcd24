"""The memory budget at run time: profile the blocks once per input shape, choose their plans, apply them.

:class:`BudgetPlanner` belongs to a :class:`~.policy.MemoryPolicy` with
``memory_budget_gib``. At the first training forward of each input shape
(:meth:`BudgetPlanner.prepare`, called by the policy's ``run_backbone``):

1. the blocks that record autograd are grouped by structure (a block with an
   adapter, one without, ...); one block of each group is run forward and
   backward under every candidate plan on a slice of the real input
   (:mod:`.profile`): seconds (median of two runs after one warm-up), bytes
   kept for backward and bytes needed on top. Scaled to the whole batch,
   these are the costs. On a GPU this takes about 10 to 20 block steps,
   under a second for ViT-S and a few seconds for ViT-g; the RNG state is
   restored afterwards, so the step's arithmetic is that of a run without a
   budget. On the CPU :func:`~.cost_model.modelled_costs` stands in;
2. ``fixed`` is the memory in use now (weights, frames, optimizer state once
   it exists), the backbone's output and final norm, and a reserve for the
   head's activations and allocator slack (:data:`RESERVE_FRACTION` of the
   budget, at least 0.25 GiB). The optimizer allocates its state after the
   first step's backward, so the first step does not hold it at its peak;
   when the memory in use at a forward has grown by more than
   :data:`REPLAN_GROWTH` of the budget since planning (that state, most
   often), the plans are chosen again, at most twice per input shape;
3. :func:`~.planner.choose_plans` picks the fastest plans within the budget
   (without the plain-checkpoint plans that a chunked-backward twin matches:
   :func:`~.planner.prefer_chunked`), the dequantized copies of the chosen
   blocks are made, and one line is logged.
   With ``compile_blocks``, a quantized block's held plans are profiled and
   chosen among first (a compiled block with unheld 4-bit layers breaks its
   graph at each one, and each piece compiles on its own); all plans only
   when the held ones do not fit; with ``frozen_fp8=True`` too (the fp8
   products trace into the compiled block where their bf16 backward has a
   held copy to multiply with). With ``frozen_fp8="all"``, whose fp8 products
   read no bf16 weight, no plan holds dequantized copies.

:meth:`plan_of` then tells the policy how each block runs.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Dict, List, Optional, Set, Tuple

import torch
from torch import Tensor, nn

from opentad.models.bricks.quant import is_quantized
from opentad.models.memory.cost_model import graph_buffer_bytes, graph_bytes, held_copy_bytes, vit_block_costs
from opentad.models.memory.dequant_cache import hold_dequantized
from opentad.models.memory.fp8_matmul import fp8_takes_every_product
from opentad.models.memory.offload import OffloadSavedTensors
from opentad.models.memory.planner import (GiB, BlockPlan, BudgetError, Plan, candidate_plans, choose_plans,
                                           prefer_chunked)
from opentad.models.memory.profile import measure_costs, profile_rows

logger = logging.getLogger(__name__)

__all__ = ["BudgetPlanner", "RESERVE_FRACTION", "REPLAN_GROWTH", "CARD_RESERVE_GIB", "card_budget"]

#: share of the budget kept for what the backbone does not see (the head, the loss, allocator slack)
RESERVE_FRACTION = 0.08
#: growth of the memory in use (share of the budget) that makes the planner choose again
REPLAN_GROWTH = 0.02
#: what a card needs besides the step's allocations (the CUDA context, the allocator's cached blocks): a budget
#: above the card's memory less this is lowered to it
CARD_RESERVE_GIB = 1.5


def card_budget(budget_gib: float, card_bytes: int) -> float:
    """The budget a card with ``card_bytes`` of memory can hold: ``budget_gib``, or the card's memory less
    :data:`CARD_RESERVE_GIB` when that is smaller (never below 0)."""
    return max(0.0, min(float(budget_gib), card_bytes / GiB - CARD_RESERVE_GIB))


def _signature(block: nn.Module) -> Tuple[Any, ...]:
    """Blocks with equal signatures cost the same for the same input."""
    adapter = getattr(block, "adapter", None)
    trainable = sum(p.numel() for p in block.parameters() if p.requires_grad)
    shapes = tuple((n, tuple(p.shape), p.dtype) for n, p in block.named_parameters())
    return type(block), type(adapter), trainable, shapes


class BudgetPlanner:
    """Per-block plans of one backbone that fit ``budget_gib``, chosen once per input shape.

    Args:
        budget_gib: the budget of the step's peak (``torch.cuda.max_memory_allocated``).
        chunks: row groups of the chunked-backward plans.
        pinned: run every block under this one plan (``memory_plan``: benchmarks, diagnosis), still
            costed and checked against the budget; ``hold`` applies to quantized blocks only, ``offload``
            on CUDA only. None: choose among all candidates.
    """

    def __init__(self, *, budget_gib: float, chunks: int = 4, pinned: Optional[BlockPlan] = None):
        self.budget_gib = float(budget_gib)
        self.budget = int(self.budget_gib * GiB)  # bytes; lowered to the card's memory at the first CUDA step
        self._card_checked = False
        self._lowered_for: Optional[str] = None  # the card's name once the budget was lowered to it
        self.pinned = pinned
        self.chunks = self._row_groups(chunks)
        self.offload: Optional[OffloadSavedTensors] = None  # one per forward, entered by offloading blocks
        self._plans: Dict[Tuple[Any, ...], Tuple[Dict[int, BlockPlan], Plan, int, int]] = {}
        self._current: Dict[int, BlockPlan] = {}
        self.last: Optional[Plan] = None

    @staticmethod
    def _row_groups(chunks: Optional[int]) -> int:
        """Row groups of the chunked plans for a policy's ``backward_chunks`` (1 or None: the default 4)."""
        return int(chunks) if chunks and chunks > 1 else 4

    def serves(self, *, budget_gib: float, chunks: Optional[int], pinned: Optional[BlockPlan]) -> bool:
        """Whether this planner is the one a policy with these settings would build (so it may be reused)."""
        return (self.budget_gib, self.chunks, self.pinned) == (float(budget_gib), self._row_groups(chunks), pinned)

    def plan_of(self, block: nn.Module) -> Optional[BlockPlan]:
        """The plan of ``block`` for the current input (None: the policy's own settings)."""
        return self._current.get(id(block))

    def prepare(self, backbone: nn.Module, frames: Tensor, policy: Any) -> None:
        """Choose (once per shape, again when the memory in use grew) and apply the plans for ``frames``
        ``[B*N, C, T, H, W]``.

        Raises:
            BudgetError: nothing fits the budget.
            TypeError: the backbone has no ``embed``/``blocks``/``graph_free_blocks`` (not a ViT).
        """
        if not all(hasattr(backbone, a) for a in ("embed", "blocks", "graph_free_blocks")):
            raise TypeError(f"memory_budget_gib needs a ViT backbone (embed, blocks); got {type(backbone).__name__}")
        if frames.is_cuda and not self._card_checked:
            self._fit_card(frames.device)
        free = backbone.graph_free_blocks()
        blocks = list(backbone.blocks)[free:]
        trains = tuple(p.requires_grad for p in backbone.parameters())
        key = (tuple(frames.shape), frames.dtype, frames.device, free, backbone.training, trains)
        known = self._plans.get(key)
        if known is not None and frames.is_cuda and known[3] < 2:
            held = sum(held_copy_bytes(b) for b in backbone.blocks) + graph_bytes(policy, known[4])
            if torch.cuda.memory_allocated(frames.device) - held > known[2] + REPLAN_GROWTH * self.budget:
                known = None  # e.g. the optimizer's state, allocated after the first step (not graph buffers)
        if known is None:
            replans = self._plans[key][3] + 1 if key in self._plans else 0
            try:
                plans, plan, in_use, graphed_shape = self._choose(backbone, blocks, frames, policy)
            except BudgetError as error:
                if self._lowered_for is None:
                    raise
                raise BudgetError(f"{error} (memory_budget_gib={self.budget_gib:g} was lowered to "
                                  f"{self.budget / GiB:.2f} GiB: what {self._lowered_for} holds less "
                                  f"{CARD_RESERVE_GIB} GiB)", needed=error.needed) from None
            known = self._plans[key] = (plans, plan, in_use, replans, graphed_shape)
        plans, plan = known[0], known[1]
        dtype = _hold_dtype(frames)
        for block in blocks:
            hold_dequantized(block, plans[id(block)].hold, dtype)
        self._current, self.last = plans, plan
        offloading = frames.is_cuda and any(p.offload for p in plans.values())
        self.offload = OffloadSavedTensors() if offloading else None

    def _fit_card(self, device: torch.device) -> None:
        """Lower the budget to what the card holds (:func:`card_budget`), with a warning naming both."""
        self._card_checked = True
        card = torch.cuda.get_device_properties(device).total_memory
        fitted = card_budget(self.budget_gib, card)
        if fitted < self.budget_gib:
            logger.warning("memory_budget_gib=%.2f is more than %s holds (%.2f GiB, less %.1f GiB for the CUDA "
                           "context and cache): planning for %.2f GiB; set memory_budget_gib for this card to "
                           "silence this", self.budget_gib, torch.cuda.get_device_name(device), card / GiB,
                           CARD_RESERVE_GIB, fitted)
            self.budget = int(fitted * GiB)
            self._lowered_for = torch.cuda.get_device_name(device)

    def _fixed(self, backbone: nn.Module, frames: Tensor, tokens: Tensor, blocks: List[nn.Module],
               policy: Any) -> Tuple[int, int]:
        """``(fixed bytes, bytes in use now)``; held copies are released first (the plans count them). With
        ``cuda_graphs`` what the graphs of ``blocks`` on this input keep allocated (:func:`~.cost_model.graph_buffer_bytes`)
        is counted once, ahead of their capture, and the buffers of this input's graphs captured already are
        left out of the bytes in use (those of older plans go when the new plans' graphs come)."""
        reserve = max(GiB // 4, int(RESERVE_FRACTION * self.budget))
        rows = frames.shape[0]
        # after the blocks: the last output (stream dtype) and the final norm's float32 input copy and output
        after = rows * tokens.shape[1] * tokens.shape[2] * (tokens.element_size() + 8)
        graphs = graph_buffer_bytes(backbone, blocks, (rows, *tokens.shape[1:]), tokens.dtype) \
            if policy.cuda_graphs else 0
        if frames.is_cuda:
            for block in backbone.blocks:
                hold_dequantized(block, False)
            in_use = torch.cuda.memory_allocated(frames.device) - graph_bytes(policy, (rows, *tokens.shape[1:]))
        else:
            in_use = sum(p.numel() * p.element_size() for p in backbone.parameters()) + frames.numel() * 4
        return in_use + after + graphs + reserve, in_use

    def _choose(self, backbone, blocks: List[nn.Module], frames: Tensor,
                policy) -> Tuple[Dict[int, BlockPlan], Plan, int, Tuple[int, ...]]:
        """``(plans by block id, the plan, bytes in use at planning, the blocks' input shape [rows, n, C])``."""
        started = time.perf_counter()
        with torch.no_grad():
            tokens, grid = backbone.embed(frames[:1])
        stream = tokens.to(policy.stream_dtype(frames))
        fixed, in_use = self._fixed(backbone, frames, stream, blocks, policy)
        if fixed > self.budget:
            raise BudgetError(f"memory_budget_gib={self.budget / GiB:.2f}: weights, frames and reserve alone take "
                              f"{fixed / GiB:.2f} GiB; raise the budget, lower the batch or frames")
        signatures = [_signature(block) for block in blocks]
        groups: Dict[Tuple[Any, ...], nn.Module] = {}
        for block, signature in zip(blocks, signatures):
            groups.setdefault(signature, block)
        shape = (tokens, grid, fixed)
        # compiled blocks: a 4-bit layer without a held copy breaks the graph (compiling each piece, slower);
        # try the held plans alone first, and the others (profiled then, not before) only when those do not fit
        # (fp8 forward products too: their bf16 backward traces with a held copy, and breaks the graph without)
        holders = {sig: b for sig, b in groups.items() if _holds(b, frames)}  # blocks with held plans
        held_first = policy.compile_blocks is not False and bool(holders) and self.pinned is None
        costs_of = self._costs(backbone, groups, frames, shape, policy, hold={True} if held_first else {False, True})
        _log_costs(costs_of, frames.is_cuda)

        def choose(costs_of):
            offered = {sig: prefer_chunked(costs) for sig, costs in costs_of.items()}
            return choose_plans([offered[sig] for sig in signatures], budget=self.budget, fixed=fixed)

        try:
            plan = choose(costs_of)
        except BudgetError:
            if not held_first:
                raise
            unheld = self._costs(backbone, holders, frames, shape, policy, hold={False})
            _log_costs(unheld, frames.is_cuda)
            costs_of = {sig: {**unheld.get(sig, {}), **costs} for sig, costs in costs_of.items()}
            plan = choose(costs_of)
        logger.info(
            "memory budget %.2f GiB, input %s: blocks %d-%d as %s; modelled peak %.2f GiB (%.2f GiB fixed), "
            "%s; %s %d plans of %d block group(s) in %.1f s",
            self.budget / GiB, list(frames.shape), len(backbone.blocks) - len(blocks), len(backbone.blocks) - 1,
            plan.summary(), plan.peak / GiB, fixed / GiB,
            f"blocks {plan.seconds:.3f} s per step" if frames.is_cuda else f"cost {plan.seconds:.3g} multiply-adds",
            "profiled" if frames.is_cuda else "modelled (CPU)", sum(map(len, costs_of.values())),
            len(groups), time.perf_counter() - started,
        )
        return {id(b): p for b, p in zip(blocks, plan.plans)}, plan, in_use, (frames.shape[0], *stream.shape[1:])

    def _costs(self, backbone: nn.Module, groups: Dict[Tuple[Any, ...], nn.Module], frames: Tensor, shape, policy, *,
               hold: Set[bool]) -> Dict[Tuple[Any, ...], Dict[BlockPlan, Any]]:
        """The cost of every candidate plan of one block per group: profiled on CUDA, modelled on the CPU.

        Args:
            backbone: the ViT (its ``embed`` makes the profile's input).
            groups: one block per signature.
            frames: the step's frames ``[B*N, C, T, H, W]``.
            shape: ``(tokens [1, n, C] of one row, token grid, fixed bytes)``.
            policy: the memory policy (stream dtype, execution).
            hold: the values of :attr:`BlockPlan.hold` to cost for a quantized block (its plans with held
                dequantized weights, without, or both); other blocks have no held plans.
        """
        tokens, grid, fixed = shape
        rows, dtype = frames.shape[0], policy.stream_dtype(frames)
        costs_of: Dict[Tuple[Any, ...], Dict[BlockPlan, Any]] = {}
        for signature, block in groups.items():
            quantized = _holds(block, frames)
            if self.pinned is not None:
                plans = [dataclasses.replace(self.pinned, hold=self.pinned.hold and quantized,
                                             offload=self.pinned.offload and frames.is_cuda)]
            else:
                plans = candidate_plans(chunks=self.chunks, quantized=quantized, offload=frames.is_cuda)
                plans = [p for p in plans if p.hold in hold] if quantized else plans
            if not frames.is_cuda:
                costs_of[signature] = vit_block_costs(block, plans, rows, tokens.shape[1], tokens.shape[2], dtype)
                continue
            least = max(2, *(p.backward_chunks for p in plans))  # a row group per chunk at least
            take = profile_rows(rows, tokens.shape[1], tokens.shape[2], fixed, self.budget,
                                unit=_rows_per_video(block, grid[0]), least=least,
                                element_bytes=torch.empty((), dtype=dtype).element_size())
            with torch.no_grad():
                sample, _ = backbone.embed(frames[:take])
            costs_of[signature] = measure_costs(policy, block, sample.to(dtype), grid[1:], plans, scale=rows / take,
                                                hold_dtype=_hold_dtype(frames))
        return costs_of


def _log_costs(costs_of: Dict[Tuple[Any, ...], Dict[BlockPlan, Any]], measured: bool) -> None:
    """Log (debug) each block group's plans and costs: ``"block group 0: checkpoint 61.2 ms, kept 0.24 GiB,
    working 2.10 GiB; ..."``."""
    spent = (lambda c: f"{c.seconds * 1e3:.1f} ms") if measured else (lambda c: f"{c.seconds:.3g} multiply-adds")
    for index, costs in enumerate(costs_of.values()):
        logger.debug("block group %d: %s", index, "; ".join(
            f"{plan.name} {spent(c)}, kept {c.saved / GiB:.2f} GiB, working {c.transient / GiB:.2f} GiB"
            for plan, c in costs.items()))


def _quantized(block: nn.Module) -> bool:
    """Whether ``block`` has frozen 4-bit (or 8-bit) layers, and so plans holding their dequantized weights."""
    return any(is_quantized(m) for m in block.modules())


def _holds(block: nn.Module, frames: Tensor) -> bool:
    """Whether ``block`` has plans holding dequantized weights: quantized layers, not all of whose products
    are fp8 (``frozen_fp8="all"``, :func:`~.fp8_matmul.fp8_takes_every_product`: a copy would serve none)."""
    return _quantized(block) and not fp8_takes_every_product(block, frames.device, _hold_dtype(frames))


def _rows_per_video(block: nn.Module, clip_steps: int) -> int:
    """Clips of one video (a temporal adapter mixes them: a profile slice must hold whole videos)."""
    temporal = getattr(getattr(block, "adapter", None), "temporal_size", None)
    return max(1, temporal // clip_steps) if isinstance(temporal, int) and clip_steps else 1


def _hold_dtype(frames: Tensor) -> Optional[torch.dtype]:
    """The dtype held copies are made in: autocast's when on; else None, each layer's own compute dtype."""
    device = frames.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
