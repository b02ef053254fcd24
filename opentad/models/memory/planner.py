"""Choose, per transformer block, the fastest way to run it that keeps the step within a memory budget.

Each block that records autograd can run under one :class:`BlockPlan`:

========================  ===============================================  =======================================
plan                      what stays on the device until backward          extra time
========================  ===============================================  =======================================
``keep``                  every activation the block saves                 none (one forward, one backward)
``checkpoint``            the block's input                                one more forward (recomputation)
``checkpoint+chunks``     the block's input; a smaller backward working    as checkpoint, a little launch overhead
                          set (:mod:`.chunked_residual`)
``...+offload``           nothing (the input waits in pinned host memory)  the copies, mostly overlapped
``...+hold``              also a bf16 copy of its frozen 4-bit weights     minus the dequantizations
========================  ===============================================  =======================================

A :class:`PlanCost` gives, for one block and one plan, the seconds of its
forward and backward, the bytes it keeps until backward (``saved``, plus any
held weight copies) and the bytes it needs on top while it runs
(``transient``). The step's peak is modelled as::

    fixed + sum(saved of every block) + max(transient of any block)

an upper bound (a block's transient never meets the saved values of the
blocks after it). :func:`choose_plans` returns the plans of least total time
whose modelled peak fits the budget: an exact multiple-choice knapsack over
memory in units of ``unit_bytes`` (each cost rounded up, so the plan never
exceeds the budget in the model), once for every candidate ``max transient``.
Costs come from a short measured profile on the GPU (:mod:`.profile`) or,
on the CPU, from :func:`.cost_model.modelled_costs`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

__all__ = ["BlockPlan", "PlanCost", "Plan", "BudgetError", "choose_plans", "candidate_plans", "prefer_chunked",
           "CHUNKED_TIE"]

GiB = 2**30
#: at most this many candidate maxima of the transient are searched (an even subset beyond it: the plan still
#: fits, it may be a little slower than the best)
MAX_CAPS = 64
#: a chunked-backward plan within this share of its plain-checkpoint twin's time counts as no slower (see
#: :func:`prefer_chunked`); below the 12% by which plain checkpointing lost in ViT-g's whole step
CHUNKED_TIE = 0.10


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """How one block runs in a training step.

    Args:
        checkpoint: recompute the block in backward (keep only its input).
        backward_chunks: > 1: recompute its frozen attention and MLP this many row groups at a time.
        offload: its kept input waits in pinned host memory (with ``checkpoint``).
        hold: its frozen 4-bit weights keep a dequantized copy for the whole step.
    """

    checkpoint: bool = True
    backward_chunks: int = 1
    offload: bool = False
    hold: bool = False

    @property
    def name(self) -> str:
        parts = ["checkpoint" if self.checkpoint else "keep"]
        if self.backward_chunks > 1:
            parts.append(f"chunks{self.backward_chunks}")
        if self.offload:
            parts.append("offload")
        if self.hold:
            parts.append("hold")
        return "+".join(parts)

    @classmethod
    def from_name(cls, name: str) -> "BlockPlan":
        """The plan :attr:`name` writes: ``keep`` or ``checkpoint``, then optionally ``+chunksN`` (N >= 2,
        with checkpoint), ``+offload`` (with checkpoint) and ``+hold``, in that order.

        Raises:
            ValueError: any other string (names it and the form).
        """
        head, *rest = str(name).split("+")
        plan = cls(checkpoint=head == "checkpoint")
        for part in rest:
            if part.startswith("chunks") and part[6:].isascii() and part[6:].isdigit() and int(part[6:]) >= 2:
                plan = dataclasses.replace(plan, backward_chunks=int(part[6:]))
            elif part in ("offload", "hold"):
                plan = dataclasses.replace(plan, **{part: True})
        keep_only = not plan.checkpoint and (plan.offload or plan.backward_chunks > 1)
        if head not in ("keep", "checkpoint") or plan.name != name or keep_only:
            raise ValueError(f"memory_plan={name!r} is not a plan: 'keep' or 'checkpoint', then optionally "
                             "'+chunksN' (N >= 2, with checkpoint), '+offload' (with checkpoint), '+hold', "
                             "in that order (e.g. 'checkpoint+chunks4+offload+hold', 'keep+hold')")
        return plan


@dataclasses.dataclass(frozen=True)
class PlanCost:
    """The modelled or measured cost of one block under one plan.

    Args:
        seconds: forward + backward (+ recomputation) time.
        saved: bytes kept on the device from the block's forward to its backward, held weights included.
        transient: bytes needed on top of everything kept while the block runs forward or backward.
    """

    seconds: float
    saved: int
    transient: int


@dataclasses.dataclass(frozen=True)
class Plan:
    """The chosen plans and their modelled totals.

    Attributes:
        plans: one :class:`BlockPlan` per block.
        seconds: modelled time of the blocks' forward and backward.
        peak: modelled peak bytes, ``fixed`` included.
        budget: the budget in bytes.
    """

    plans: Tuple[BlockPlan, ...]
    seconds: float
    peak: int
    budget: int

    def summary(self) -> str:
        """``"12 x keep+hold, 28 x checkpoint+offload"`` in block order of first use."""
        counts: Dict[str, int] = {}
        for plan in self.plans:
            counts[plan.name] = counts.get(plan.name, 0) + 1
        return ", ".join(f"{n} x {name}" for name, n in counts.items())


class BudgetError(ValueError):
    """No choice of plans fits the budget.

    Attributes:
        needed: the least modelled peak of any choice, in bytes (None when not computed).
    """

    def __init__(self, message: str, needed: Optional[int] = None):
        super().__init__(message)
        self.needed = needed


def candidate_plans(*, chunks: int = 4, quantized: bool = False, offload: bool = True) -> List[BlockPlan]:
    """The plans worth considering for a block.

    Args:
        chunks: row groups of the chunked backward (1: no chunked plans).
        quantized: the block has frozen 4-bit weights (adds the ``hold`` variants).
        offload: offloading is possible (CUDA).
    """
    base = [BlockPlan(checkpoint=False), BlockPlan()]
    if chunks > 1:
        base.append(BlockPlan(backward_chunks=chunks))
    if offload:
        base += [dataclasses.replace(p, offload=True) for p in base if p.checkpoint]
    if quantized:
        base += [dataclasses.replace(p, hold=True) for p in base]
    return base


def prefer_chunked(costs: Mapping[BlockPlan, PlanCost], *, tie: float = CHUNKED_TIE) -> Dict[BlockPlan, PlanCost]:
    """``costs`` without each plain-checkpoint plan that a chunked-backward twin (same offload and hold) matches:
    it keeps no more bytes, needs no larger working set, and takes at most ``tie`` longer.

    Both recompute the same arithmetic. A profile of one block alone misses what plain checkpointing costs in the
    chain of blocks: on ViT-g (H100, docs/benchmarks.md, runs 8 and 9) it put plain checkpointing up to 5% ahead of
    the chunked backward, where in the whole step it was 10 to 12% behind. Where chunking really costs more
    (many small launches, ViT-S eager), the profile sees it, beyond the tie. Only matched plans go, so whatever
    fitted a budget before still fits, up to 1 MiB per block (kept bytes are compared to the MiB: measured
    ones carry a few small tensors more or less).

    Args:
        costs: one block's plans and their costs.
        tie: the share of the plain plan's time within which the chunked twin wins.
    """
    def matched(plan: BlockPlan, plain: PlanCost) -> bool:
        return any(twin.saved <= plain.saved + 2**20 and twin.transient <= plain.transient
                   and twin.seconds <= plain.seconds * (1 + tie)
                   for p, twin in costs.items()
                   if p.checkpoint and p.backward_chunks > 1 and (p.offload, p.hold) == (plan.offload, plan.hold))

    return {plan: cost for plan, cost in costs.items()
            if not (plan.checkpoint and plan.backward_chunks == 1 and matched(plan, cost))}


def _knapsack(options: Sequence[Sequence[Tuple[float, int]]], capacity: int) -> Optional[Tuple[float, List[int]]]:
    """Least total time picking one ``(time, units)`` option per item with total units <= ``capacity``.

    Returns ``(time, choice per item)``, or None when nothing fits.
    """
    best = torch.zeros(capacity + 1, dtype=torch.float64)  # best[c]: least time of the items so far within c units
    picks: List[torch.Tensor] = []
    for item in options:
        totals = torch.full((len(item), capacity + 1), float("inf"), dtype=torch.float64)
        for row, (seconds, units) in enumerate(item):  # the item's option taken with ``units`` of the capacity
            if units <= capacity:
                torch.add(best[: capacity + 1 - units], seconds, out=totals[row, units:])
        best, pick = totals.min(dim=0)
        picks.append(pick)
    if not math.isfinite(float(best[capacity])):
        return None
    choice, c = [], capacity
    for item, pick in zip(reversed(options), reversed(picks)):
        index = int(pick[c])
        choice.append(index)
        c -= item[index][1]
    return float(best[capacity]), choice[::-1]


def choose_plans(
    costs: Sequence[Mapping[BlockPlan, PlanCost]],
    *,
    budget: int,
    fixed: int,
    unit_bytes: Optional[int] = None,
) -> Plan:
    """The fastest plans whose modelled peak fits ``budget``.

    Args:
        costs: per block, the cost of each candidate plan.
        budget: bytes the step may use at its peak.
        fixed: bytes in use whatever the plans (weights, optimizer state, frames, the head's reserve).
        unit_bytes: memory granularity of the search (default: 1 MiB, coarser for budgets above 8 GiB so the
            search has at most 8192 units); costs are rounded up to it.

    Returns:
        the :class:`Plan`.

    Raises:
        BudgetError: not even the smallest plans fit (names the budget and what they need).
    """
    free = budget - fixed
    if not costs:  # nothing records autograd: no plan to choose
        if free < 0:
            raise BudgetError(f"memory_budget_gib={budget / GiB:.2f}: weights, frames and reserve alone take "
                              f"{fixed / GiB:.2f} GiB")
        return Plan(plans=(), seconds=0.0, peak=fixed, budget=budget)
    unit = unit_bytes or max(2**20, math.ceil(max(free, 1) / 8192))
    floor = max(min(c.transient for c in block.values()) for block in costs)  # below it some block has no plan
    caps = sorted({c.transient for block in costs for c in block.values() if c.transient >= floor})
    if len(caps) > MAX_CAPS:  # many distinct blocks: an even subset of the candidate maxima, both ends kept
        caps = [caps[round(i * (len(caps) - 1) / (MAX_CAPS - 1))] for i in range(MAX_CAPS)]
    best: Optional[Tuple[float, int, List[BlockPlan]]] = None
    for cap in caps:
        capacity = (free - cap) // unit
        if capacity < 0:
            break
        allowed = [[(p, c) for p, c in block.items() if c.transient <= cap] for block in costs]
        found = _knapsack([[(c.seconds, math.ceil(c.saved / unit)) for _, c in a] for a in allowed], capacity)
        if found is None:
            continue
        plans = [a[i][0] for a, i in zip(allowed, found[1])]
        peak = fixed + max(block[p].transient for block, p in zip(costs, plans))
        peak += sum(block[p].saved for block, p in zip(costs, plans))
        if best is None or (found[0], peak) < (best[0], best[1]):
            best = (found[0], peak, plans)
    if best is None:
        smallest = _least_peak(costs, fixed, caps, unit)
        raise BudgetError(
            f"memory_budget_gib={budget / GiB:.2f}: the smallest plans need {smallest / GiB:.2f} GiB "
            f"({fixed / GiB:.2f} GiB of it weights, frames and reserve); raise the budget, lower the batch or frames",
            needed=smallest,
        )
    return Plan(plans=tuple(best[2]), seconds=best[0], peak=best[1], budget=budget)


def _least_peak(costs: Sequence[Mapping[BlockPlan, PlanCost]], fixed: int, caps: Sequence[int], unit: int) -> int:
    """The least modelled peak of any choice (kept bytes rounded up to ``unit`` per block, as the search does):
    for each largest working set ``cap``, every block's smallest kept bytes among its plans within ``cap``."""
    return min(fixed + cap + unit * sum(min(math.ceil(c.saved / unit) for c in block.values() if c.transient <= cap)
                                        for block in costs) for cap in caps)
