"""The measured profile behind the memory planner: one block, every candidate plan, on the GPU.

For each plan the block runs forward and backward on a slice of the real
token input, three times (the first is a warm-up); the median of the other
two is its time. Memory is read from the allocator around the third run:
``saved`` is what the forward left allocated besides its output (plus the
input itself, which the block keeps unless the plan offloads it), and
``transient`` the highest allocation during forward and backward above what
was kept. Both, and the time, are scaled from the slice's rows to the whole
batch (linear in rows: the blocks work on each clip on their own but for the
adapter's convolution). Gradients the profile leaves in the block's
parameters are removed and the RNG state is restored, so the real step is
unaffected.
"""
from __future__ import annotations

import contextlib
import math
import statistics
from typing import Any, Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from opentad.models.memory.dequant_cache import hold_dequantized
from opentad.models.memory.offload import OffloadSavedTensors
from opentad.models.memory.planner import BlockPlan, PlanCost

__all__ = ["measure_costs", "profile_rows"]

#: values kept per token by a block that is not recomputed, in units of the width (see planner.modelled_costs)
_KEEP_WIDTHS = 14


def profile_rows(rows: int, tokens: int, width: int, fixed: int, budget: int, element_bytes: int = 2) -> int:
    """Rows of the profile's slice: at most a quarter of the batch, and a keep-plan working set within half
    of what the budget leaves free (at least one row)."""
    free = max(budget - fixed, 0) // 2
    per_row = _KEEP_WIDTHS * tokens * width * element_bytes
    return max(1, min(math.ceil(rows / 4), free // max(per_row, 1)))


def _run_once(policy: Any, block: nn.Module, x: Tensor, grid: Tuple[int, int], plan: BlockPlan) -> Tuple[float, int, int]:
    """One forward and backward of ``block`` under ``plan``: (seconds, saved bytes, transient bytes)."""
    device = x.device
    x = x.detach().requires_grad_(True)
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    offload = OffloadSavedTensors() if plan.offload else contextlib.nullcontext()
    with offload:
        y = policy.execute(block, x, grid, checkpoint=plan.checkpoint, chunks=plan.backward_chunks)
    torch.cuda.synchronize(device)
    out_bytes = y.numel() * y.element_size()
    saved = torch.cuda.memory_allocated(device) - base - out_bytes
    y.backward(torch.ones_like(y))
    end.record()
    torch.cuda.synchronize(device)
    transient = torch.cuda.max_memory_allocated(device) - base - saved - out_bytes
    if not plan.offload:
        saved += x.numel() * x.element_size()
    return start.elapsed_time(end) / 1e3, max(saved, 0), max(transient, 0)


def measure_costs(
    policy: Any, block: nn.Module, x: Tensor, grid: Tuple[int, int], plans: Sequence[BlockPlan], *, scale: float
) -> Dict[BlockPlan, PlanCost]:
    """Measure ``block`` under each plan on ``x`` ``[rows, N, C]`` (CUDA) and scale to ``scale`` times the rows.

    Args:
        policy: the :class:`~.policy.MemoryPolicy` (its ``execute`` runs a block under a plan).
        block: one block of a group.
        x: a slice of the block's real input, in the stream dtype.
        grid: the spatial token grid.
        plans: candidate plans.
        scale: the batch's rows over ``x``'s rows.

    Returns:
        ``{plan: PlanCost}``; held weight copies are counted in ``saved`` at their full size (not scaled).
    """
    grads = {p: p.grad for p in block.parameters()}
    costs: Dict[BlockPlan, PlanCost] = {}
    devices = [x.device.index or 0]
    with torch.random.fork_rng(devices=devices):
        for plan in plans:
            held = hold_dequantized(block, x.dtype if plan.hold else None)
            runs: List[Tuple[float, int, int]] = [_run_once(policy, block, x, grid, plan) for _ in range(3)]
            seconds = statistics.median(r[0] for r in runs[1:])
            saved, transient = runs[-1][1], runs[-1][2]
            costs[plan] = PlanCost(
                seconds=seconds * scale, saved=int(saved * scale) + held, transient=int(transient * scale)
            )
    hold_dequantized(block, None)
    for param, grad in grads.items():
        param.grad = grad
    return costs
