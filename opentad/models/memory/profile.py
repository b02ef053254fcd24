"""The measured profile behind the memory planner: one block, every candidate plan, on the GPU.

For each plan the block runs forward and backward on the real token input
(all of it when the budget leaves room, else a slice of whole videos, since
the temporal adapter mixes the clips of a video, and at least as many clips
as the chunked plans have row groups),
three times (the first is a warm-up); the median of the other two is its
time. An offloading plan gets the time of the same plan without offloading:
alone, a block must wait for its input to come back from host memory, while
in the chain of blocks :class:`~.offload.OffloadSavedTensors` brings it back
during the next block's backward and the copies overlap the computation. Memory is read from the allocator around the third run: ``saved`` is
what the forward left allocated besides its output, plus the input itself,
which the block keeps unless the plan offloads it; ``transient`` the highest
allocation during forward and backward above what was kept. An offloading
block's input and output, and the input of the block before it (prefetched
during its backward), are on the GPU while it runs: three stream tensors are
added to its ``transient``. Both, and the time, are scaled from the slice's
rows to the whole batch (the blocks work on each clip on their own but for
the adapter's convolution), the held weight copies excepted. The profile's
backward returns its gradients instead of accumulating them into the
parameters (so no gradient hook fires: DDP's, with a static graph, counts
them), held copies are dropped and the RNG state restored, so the real step is unaffected; the allocator's
cache is emptied and its peak statistic brought back to at least its value
before the profile.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from opentad.models.memory.dequant_cache import hold_dequantized
from opentad.models.memory.offload import OffloadSavedTensors
from opentad.models.memory.planner import BlockPlan, PlanCost

__all__ = ["measure_costs", "profile_rows"]

#: values per token, in units of the width, that a block which is not recomputed keeps plus those it needs while
#: it runs (ViT-g on the H100: 4.16 GiB kept and 2.20 GiB working for 96 x 968 tokens of width 1408, 26 widths)
_KEEP_WIDTHS = 28


def profile_rows(
    rows: int, tokens: int, width: int, fixed: int, budget: int, *, unit: int = 1, least: int = 2,
    element_bytes: int = 2,
) -> int:
    """Rows (clips) of the profile's slice.

    The whole batch, fewer when a keep-plan working set of that many rows would pass half of what the budget
    leaves free; but at least ``least`` rows, and always whole videos of ``unit`` clips. A slice runs the chunked
    plans on chunks smaller than the step's, and the whole-block plans on fewer rows: on ViT-g (H100), a half-batch
    slice put plain checkpointing with held weights 2.9 ms per block ahead of the chunked backward, the whole
    batch 1.0 ms (docs/benchmarks.md, runs 8 and 9).
    """
    free = max(budget - fixed, 0) // 2
    per_row = _KEEP_WIDTHS * tokens * width * element_bytes
    want = max(least, min(rows, free // max(per_row, 1)))
    return min(rows, unit * math.ceil(want / unit))


def _run_once(policy: Any, block: nn.Module, x: Tensor, grid: Tuple[int, int], plan: BlockPlan) -> Tuple[float, int, int]:
    """One forward and backward of ``block`` under ``plan``: (seconds, saved bytes, transient bytes)."""
    device = x.device
    x = x.detach().requires_grad_(True)
    stream = x.numel() * x.element_size()
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    with OffloadSavedTensors() if plan.offload else contextlib.nullcontext():
        y = policy.execute(block, x, grid, checkpoint=plan.checkpoint, chunks=plan.backward_chunks)
    torch.cuda.synchronize(device)
    out_bytes = y.numel() * y.element_size()
    saved = torch.cuda.memory_allocated(device) - base - out_bytes
    # the gradients are returned, never accumulated into the parameters: an accumulation would fire DDP's hooks,
    # which a static graph counts in its first step (the profile runs inside DDP's forward)
    trainable = [p for p in block.parameters() if p.requires_grad]
    torch.autograd.grad(y, [x, *trainable], torch.ones_like(y), allow_unused=True)
    end.record()
    torch.cuda.synchronize(device)
    transient = torch.cuda.max_memory_allocated(device) - base - saved - out_bytes
    if plan.offload:
        transient += 3 * stream  # its input and output, and the previous block's input coming back
    else:
        saved += stream
    return start.elapsed_time(end) / 1e3, max(saved, 0), max(transient, 0)


def _restore_peak(device: torch.device, peak: int) -> None:
    """Make the allocator's peak statistic at least ``peak`` again (a short allocation up to it)."""
    torch.cuda.reset_peak_memory_stats(device)
    missing = peak - torch.cuda.memory_allocated(device)
    if missing > 0:
        try:
            del_me = torch.empty(missing, dtype=torch.uint8, device=device)
            del del_me
        except torch.cuda.OutOfMemoryError:  # the statistic stays lower; nothing else changes
            pass


def measure_costs(
    policy: Any, block: nn.Module, x: Tensor, grid: Tuple[int, int], plans: Sequence[BlockPlan], *, scale: float,
    hold_dtype: Optional[torch.dtype] = None,
) -> Dict[BlockPlan, PlanCost]:
    """Measure ``block`` under each plan on ``x`` ``[rows, N, C]`` (CUDA) and scale to ``scale`` times the rows.

    Args:
        policy: the :class:`~.policy.MemoryPolicy` (its ``execute`` runs a block under a plan).
        block: one block of a group.
        x: a slice of the block's real input (whole videos), in the stream dtype.
        grid: the spatial token grid.
        plans: candidate plans.
        scale: the batch's rows over ``x``'s rows.
        hold_dtype: the dtype of held weight copies (None: each layer's compute dtype).

    Returns:
        ``{plan: PlanCost}``; held weight copies are counted in ``saved`` at their full size (not scaled).
    """
    device = x.device
    peak_before = torch.cuda.max_memory_allocated(device)
    costs: Dict[BlockPlan, PlanCost] = {}
    try:
        with torch.random.fork_rng(devices=[device.index or 0]):
            times: Dict[BlockPlan, float] = {}
            for plan in sorted(plans, key=lambda p: p.offload):  # offloading plans after their twins
                held = hold_dequantized(block, plan.hold, hold_dtype)
                twin = dataclasses.replace(plan, offload=False)
                runs: List[Tuple[float, int, int]] = [_run_once(policy, block, x, grid, plan)
                                                      for _ in range(1 if twin in times else 3)]
                times[plan] = times[twin] if twin in times else statistics.median(r[0] for r in runs[1:])
                saved, transient = runs[-1][1], runs[-1][2]
                costs[plan] = PlanCost(
                    seconds=times[plan] * scale, saved=int(saved * scale) + held, transient=int(transient * scale)
                )
    finally:
        hold_dequantized(block, False)
        torch.cuda.empty_cache()  # the profile's cached blocks (the whole batch's working sets) back to the card
        _restore_peak(device, peak_before)
    return costs
