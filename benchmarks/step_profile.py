"""Where one training step's time goes: device time per kind of kernel, and how long the device sat idle.

:func:`kernel_breakdown` runs a function once under :mod:`torch.profiler`
and sums the self time of every device event (CUDA kernels, copies and
memsets; on the CPU, every operator's self time) into the categories of
:data:`CATEGORIES`, matched on the lower-cased event name in order, first
match wins: ``copy`` holds transfers (memcpy, memset: offloading, on their
own stream), ``cast`` the copy kernels (dtype casts, layout copies);
everything else is ``other`` (element-wise ops, norms, reductions: what
fusion would save). ``busy_ms`` is the union of the device events' intervals
(overlapping streams counted once) and ``idle_ms`` the rest of the step's
wall time: a large idle share means the step waits on the host (launch
overhead, synchronisations), and includes the profiler's own host overhead,
so it is an upper bound. On the CPU, ``kernels`` counts every operator
(nested ones and autograd's included). :func:`memory_recorded` records every
allocation of a block of steps (``--profile-memory``).
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.common import sync

__all__ = ["CATEGORIES", "category_of", "kernel_breakdown", "merged_length", "idle_gaps", "format_breakdown",
           "format_gaps", "memory_recorded"]

#: (category, name fragments); the first category with a fragment in the lower-cased event name wins, after
#: Inductor's kernels (names starting ``triton``, whatever op they fuse), which are ``compiled``
CATEGORIES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("dequant", ("dequant",)),
    ("attention", ("flash", "fmha", "attention", "sdpa")),
    ("conv", ("conv", "implicit_gemm", "fprop", "dgrad", "wgrad", "depthwise")),
    ("gemm", ("gemm", "cutlass", "xmma", "nvjet", "cublas", "aten::mm", "aten::addmm", "aten::bmm")),
    ("copy", ("memcpy", "memset")),
    ("cast", ("copy_kernel", "aten::copy_")),
    ("compiled", ("triton",)),
)


#: kernels listed by name in a breakdown
TOP = 12

#: idle gaps listed in a breakdown; gaps shorter than ``GAP_FLOOR_US`` (a launch's own latency) are only counted
GAPS = 8
GAP_FLOOR_US = 20.0


def category_of(name: str) -> str:
    """The :data:`CATEGORIES` entry of an event name, or ``"other"``."""
    low = name.lower()
    if low.startswith("triton"):
        return "compiled"
    for category, fragments in CATEGORIES:
        if any(f in low for f in fragments):
            return category
    return "other"


def merged_length(intervals: List[Tuple[float, float]]) -> float:
    """The length of the union of ``(start, end)`` intervals (overlaps counted once)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def idle_gaps(spans: Sequence[Tuple[float, float, str]], host: Sequence[Tuple[float, float, str]] = (),
              top: int = GAPS) -> Dict[str, Any]:
    """Where the device sat idle between its first and last event: the longest gaps, between which events, and
    what the host was running meanwhile.

    Args:
        spans: device events ``(start, end, name)`` (any order; overlapping streams merged).
        host: host operators ``(start, end, name)`` on the same clock; a gap is attributed to the shortest one
            (the innermost) that covers its middle.
        top: gaps listed.

    Returns:
        ``dict(count, total, gaps=[(length, before, after, host), ...])``: ``count`` and ``total`` over the gaps
        of at least :data:`GAP_FLOOR_US` (the clock's unit: microseconds from the profiler), ``gaps`` the
        ``top`` longest, longest first; ``before`` is the event that ended last before the gap.
    """
    found: List[Tuple[float, str, str, float]] = []
    end, last = None, ""
    for start, stop, name in sorted(spans):
        if end is not None and start > end:
            found.append((start - end, last, name, (start + end) / 2))
        if end is None or stop > end:
            end, last = stop, name
    long = [g for g in found if g[0] >= GAP_FLOOR_US]
    listed = []
    for length, before, after, middle in sorted(long, key=lambda g: -g[0])[:top]:
        covering = [(stop - start, name) for start, stop, name in host if start <= middle <= stop]
        listed.append((length, before[:80], after[:80], min(covering)[1][:80] if covering else ""))
    return dict(count=len(long), total=sum(g[0] for g in long), gaps=listed)


def _device_events(prof, device: torch.device) -> List[Any]:
    events = prof.events()
    if device.type == "cuda":
        return [e for e in events if e.device_type.name == "CUDA"]
    return list(events)  # CPU: every operator, by its self time (its children's time is theirs)


def kernel_breakdown(fn: Callable[[], Any], device: torch.device) -> Dict[str, Any]:
    """Run ``fn()`` once under the profiler; its device time per category.

    Args:
        fn: one step (already warmed up: compilation and allocator growth are not what this measures).
        device: where ``fn`` computes.

    Returns:
        ``dict(wall_ms, busy_ms, idle_ms, kernels, ms={category: self ms}, top=[(name, ms), ...])``
        (categories in :data:`CATEGORIES` order, then ``other``; ``top``: the :data:`TOP` kernels or
        operators of most self time, names cut at 160 characters).
    """
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sync(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        fn()
        sync(device)
        wall = (time.perf_counter() - start) * 1e3
    events = _device_events(prof, device)
    by_name: Dict[str, float] = {}
    for e in events:
        own = e.self_device_time_total if device.type == "cuda" else e.self_cpu_time_total
        by_name[e.name] = by_name.get(e.name, 0.0) + own / 1e3
    ms = {c: 0.0 for c, _ in CATEGORIES}
    ms["other"] = 0.0
    for name, own in by_name.items():
        ms[category_of(name)] += own
    busy = merged_length([(e.time_range.start, e.time_range.end) for e in events]) / 1e3
    top = sorted(by_name.items(), key=lambda kv: -kv[1])[:TOP]
    gaps = {}
    if device.type == "cuda":
        host = [(e.time_range.start, e.time_range.end, e.name) for e in prof.events()
                if e.device_type.name == "CPU"]
        found = idle_gaps([(e.time_range.start, e.time_range.end, e.name) for e in events], host)
        gaps = dict(gap_count=found["count"], gap_ms=found["total"] / 1e3,
                    gaps=[(round(length / 1e3, 3), before, after, op) for length, before, after, op in found["gaps"]])
    return dict(wall_ms=wall, busy_ms=busy, idle_ms=max(wall - busy, 0.0), kernels=len(events), ms=ms,
                top=[(name[:160], round(t, 3)) for name, t in top], **gaps)


def format_breakdown(rows: List[Dict[str, Any]]) -> str:
    """A markdown table of the rows that carry a ``profile`` (from :func:`kernel_breakdown`)."""
    rows = [r for r in rows if "profile" in r]
    if not rows:
        return ""
    cats = list(rows[0]["profile"]["ms"])
    lines = ["| size | config | wall (ms) | " + " | ".join(cats) + " | idle | kernels |",
             "| --- | --- | --- | " + " | ".join("---" for _ in cats) + " | --- | --- |"]
    for r in rows:
        p = r["profile"]
        lines.append(f"| {r['size']} | {r['config']} | {p['wall_ms']:.0f} | "
                     + " | ".join(f"{p['ms'][c]:.0f}" for c in cats) + f" | {p['idle_ms']:.0f} | {p['kernels']} |")
    return "\n".join(lines)


def format_gaps(rows: List[Dict[str, Any]]) -> str:
    """Per profiled CUDA row, its longest idle gaps (:func:`idle_gaps`) as a markdown list."""
    lines: List[str] = []
    for r in rows:
        p = r.get("profile", {})
        if "gaps" not in p:
            continue
        lines += [f"- {r['size']} {r['config']}: {p['gap_count']} idle gaps of {GAP_FLOOR_US:.0f} us or more, "
                  f"{p['gap_ms']:.1f} ms in all; the longest (ms, the event before -> the one after, "
                  "the innermost host op meanwhile):"]
        lines += [f"  - {length:.3f}: `{before}` -> `{after}`; host in `{op or '?'}`"
                  for length, before, after, op in p["gaps"]]
    return "\n".join(lines)


@contextlib.contextmanager
def memory_recorded(device: torch.device, enabled: bool):
    """Record every allocation of the block (``--profile-memory``) and put into the yielded dict what was alive at
    the peak of allocated bytes (``memory_top``: ``[(innermost project frame, GiB), ...]``, those allocated before
    the row's steps as one entry) and what each pool held at the end (``memory_pools``: ``[(pool, reserved GiB,
    allocated GiB), ...]``: a CUDA graph's private pool shows here, not in the trace). Nothing without ``enabled``
    or off CUDA."""
    found: Dict[str, Any] = {}
    if not enabled or device.type != "cuda":
        yield found
        return
    from opentad.utils.memory import peak_consumers, pool_reserved

    sync(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.memory._record_memory_history(max_entries=4_000_000, stacks="python")
    try:
        yield found
        sync(device)
        snapshot = torch.cuda.memory._snapshot()
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    index = device.index if device.index is not None else torch.cuda.current_device()
    _, top = peak_consumers(snapshot, base_bytes=base, device=index, top=12)
    found["memory_top"] = [(label, size / 2**30) for label, size in top]
    found["memory_pools"] = [(pool, held / 2**30, used / 2**30)
                             for pool, held, used in pool_reserved(snapshot, device=index)]
