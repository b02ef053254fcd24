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
   budget. On the CPU :func:`~.planner.modelled_costs` stands in;
2. ``fixed`` is the memory in use now (weights, frames, ...) plus the
   optimizer state the trainable parameters will get plus a reserve for the
   head (:data:`RESERVE_FRACTION` of the budget, at least 0.25 GiB);
3. :func:`~.planner.choose_plans` picks the fastest plans within the budget,
   the dequantized copies of the chosen blocks are made, and one line is logged.

:meth:`plan_of` then tells the policy how each block runs.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from opentad.models.bricks.quant import is_quantized
from opentad.models.memory.dequant_cache import hold_dequantized
from opentad.models.memory.offload import OffloadSavedTensors
from opentad.models.memory.planner import GiB, BlockPlan, Plan, candidate_plans, choose_plans, modelled_costs
from opentad.models.memory.profile import measure_costs, profile_rows

logger = logging.getLogger(__name__)

__all__ = ["BudgetPlanner", "RESERVE_FRACTION"]

#: share of the budget kept for what the backbone does not see (the head, the loss, allocator slack)
RESERVE_FRACTION = 0.08


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
    """

    def __init__(self, *, budget_gib: float, chunks: int = 4):
        self.budget_gib = float(budget_gib)
        self.chunks = int(chunks) if chunks and chunks > 1 else 4
        self.offload: Optional[OffloadSavedTensors] = None  # one per forward, entered by offloading blocks
        self._plans: Dict[Tuple[Any, ...], Tuple[Dict[int, BlockPlan], Plan]] = {}
        self._current: Dict[int, BlockPlan] = {}
        self.last: Optional[Plan] = None

    def plan_of(self, block: nn.Module) -> Optional[BlockPlan]:
        """The plan of ``block`` for the current input (None: the policy's own settings)."""
        return self._current.get(id(block))

    def prepare(self, backbone: nn.Module, frames: Tensor, policy: Any) -> None:
        """Choose (once per shape) and apply the plans for ``frames`` ``[B*N, C, T, H, W]``.

        Raises:
            BudgetError: nothing fits the budget.
            TypeError: the backbone has no ``embed``/``blocks``/``graph_free_blocks`` (not a ViT).
        """
        if not all(hasattr(backbone, a) for a in ("embed", "blocks", "graph_free_blocks")):
            raise TypeError(f"memory_budget_gib needs a ViT backbone (embed, blocks); got {type(backbone).__name__}")
        free = backbone.graph_free_blocks()
        blocks = list(backbone.blocks)[free:]
        key = (tuple(frames.shape), frames.dtype, frames.device, free, backbone.training)
        if key not in self._plans:
            self._plans[key] = self._choose(backbone, blocks, frames, policy)
        plans, plan = self._plans[key]
        for block in blocks:
            hold_dequantized(block, policy.stream_dtype(frames) if plans[id(block)].hold else None)
        self._current, self.last = plans, plan
        offloading = frames.is_cuda and any(p.offload for p in plans.values())
        self.offload = OffloadSavedTensors() if offloading else None

    def _fixed(self, backbone: nn.Module, frames: Tensor) -> int:
        budget = int(self.budget_gib * GiB)
        reserve = max(GiB // 4, int(RESERVE_FRACTION * budget))
        optimizer_state = sum(3 * p.numel() * 4 for p in backbone.parameters() if p.requires_grad)  # grad, 2 moments
        if frames.is_cuda:
            for block in backbone.blocks:
                hold_dequantized(block, None)
            in_use = torch.cuda.memory_allocated(frames.device)
        else:
            in_use = sum(p.numel() * p.element_size() for p in backbone.parameters()) + frames.numel() * 4
        return in_use + optimizer_state + reserve

    def _choose(self, backbone, blocks: List[nn.Module], frames: Tensor, policy) -> Tuple[Dict[int, BlockPlan], Plan]:
        started = time.perf_counter()
        fixed = self._fixed(backbone, frames)
        groups: Dict[Tuple[Any, ...], List[nn.Module]] = {}
        for block in blocks:
            groups.setdefault(_signature(block), []).append(block)
        with torch.no_grad():
            tokens, grid = backbone.embed(frames[:1])
        rows, dtype = frames.shape[0], policy.stream_dtype(frames)
        costs_of: Dict[Tuple[Any, ...], Dict[BlockPlan, Any]] = {}
        measured = 0
        for signature, members in groups.items():
            block = members[0]
            quantized = any(is_quantized(m) for m in block.modules())
            plans = candidate_plans(chunks=self.chunks, quantized=quantized, offload=frames.is_cuda)
            if frames.is_cuda:
                with torch.no_grad():
                    take = profile_rows(rows, tokens.shape[1], tokens.shape[2], fixed, int(self.budget_gib * GiB))
                    sample, _ = backbone.embed(frames[:take])
                costs_of[signature] = measure_costs(policy, block, sample.to(dtype), grid[1:], plans, scale=rows / take)
                measured += len(plans)
            else:
                costs_of[signature] = _cpu_costs(block, plans, rows, tokens.shape[1], tokens.shape[2], dtype)
        plan = choose_plans([costs_of[_signature(b)] for b in blocks], budget=int(self.budget_gib * GiB), fixed=fixed)
        chosen = {id(b): p for b, p in zip(blocks, plan.plans)}
        logger.info(
            "memory budget %.2f GiB, input %s: blocks %d-%d as %s; modelled peak %.2f GiB (%.2f GiB fixed), "
            "%s; %s %d plans of %d block group(s) in %.1f s",
            self.budget_gib, list(frames.shape), len(backbone.blocks) - len(blocks), len(backbone.blocks) - 1,
            plan.summary(), plan.peak / GiB, fixed / GiB,
            f"blocks {plan.seconds:.3f} s per step" if frames.is_cuda else f"cost {plan.seconds:.3g} multiply-adds",
            "profiled" if frames.is_cuda else "modelled (CPU)", measured or sum(map(len, costs_of.values())),
            len(groups), time.perf_counter() - started,
        )
        return chosen, plan


def _cpu_costs(block: nn.Module, plans, rows: int, tokens: int, width: int, dtype: torch.dtype):
    """:func:`~.planner.modelled_costs` of a ViT block, times in units of one multiply-add: the forward's linear
    layers ``rows * tokens * (4 C^2 + 2 C hidden)``, a dequantization about 8 per weight."""
    hidden = block.mlp.layers[0][0].out_features if hasattr(block, "mlp") else 4 * width
    weights = sum(m.in_features * m.out_features for m in block.modules() if is_quantized(m))
    size = torch.empty((), dtype=dtype).element_size()
    return modelled_costs(
        plans, rows=rows, tokens=tokens, width=width, hidden=hidden, element_bytes=size,
        forward_seconds=float(rows * tokens * (4 * width * width + 2 * width * hidden)),
        dequant_seconds=8.0 * weights, held_bytes=weights * size,
    )
