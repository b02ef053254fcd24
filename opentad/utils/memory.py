"""What holds GPU memory at the peak of a step, from a ``torch.cuda.memory`` snapshot.

Record a step with ``torch.cuda.memory._record_memory_history(stacks="python")``,
take ``torch.cuda.memory._snapshot()`` and pass it to :func:`peak_consumers`:
it replays the allocation trace, finds the moment the allocated bytes peak
and groups the blocks alive then by the innermost Python frame in the
project (e.g. ``opentad/models/bricks/vit.py:213 forward``), so a table can
name the top consumers. :func:`pool_reserved` sums the snapshot's segments per
memory pool: a CUDA graph's private pool holds memory in which no tensor is
allocated between replays, so it shows there, not in the trace's peak. Used by
``tools/benchmark_backbone.py --profile-memory`` and ``tools/benchmark_step.py --profile-memory``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

__all__ = ["peak_consumers", "frame_label", "pool_reserved"]

_ALLOC = "alloc"
_FREES = ("free_requested",)


def frame_label(frames: Sequence[Mapping[str, Any]], roots: Sequence[str] = ("opentad/", "tools/")) -> str:
    """``file:line function`` of the innermost frame whose file lies under one of ``roots``.

    Falls back to the innermost frame of any file, then to ``"(no Python frame)"``
    (allocations made by autograd's engine outside Python).
    """
    for frame in frames:
        name = str(frame.get("filename", ""))
        for root in roots:
            at = name.rfind(root)
            if at >= 0:
                return f"{name[at:]}:{frame.get('line')} {frame.get('name')}"
    if frames:
        frame = frames[0]
        return f"{frame.get('filename')}:{frame.get('line')} {frame.get('name')}"
    return "(no Python frame)"


def peak_consumers(
    snapshot: Mapping[str, Any], *, base_bytes: int = 0, device: int = 0, top: int = 8
) -> Tuple[int, List[Tuple[str, int]]]:
    """Peak of allocated bytes during the recorded trace and what was alive at that moment.

    Args:
        snapshot: ``torch.cuda.memory._snapshot()`` (``device_traces`` is read).
        base_bytes: bytes allocated before recording began (weights, optimizer
            state, inputs: absent from the trace); reported as one group.
        device: CUDA device index of the trace.
        top: groups to return (the rest are summed as ``"(other)"``).

    Returns:
        ``(peak_bytes, [(label, bytes), ...])`` sorted by bytes, largest first.
    """
    live: Dict[int, Tuple[int, str]] = {}
    current = best = 0
    best_live: Dict[int, Tuple[int, str]] = {}
    for event in snapshot["device_traces"][device]:
        action = event.get("action")
        if action == _ALLOC:
            live[event["addr"]] = (event["size"], frame_label(event.get("frames", [])))
            current += event["size"]
            if current > best:
                best, best_live = current, dict(live)
        elif action in _FREES and event["addr"] in live:
            current -= live.pop(event["addr"])[0]
    groups: Dict[str, int] = {}
    for size, label in best_live.values():
        groups[label] = groups.get(label, 0) + size
    ranked = sorted(groups.items(), key=lambda item: -item[1])
    head, rest = ranked[:top], sum(size for _, size in ranked[top:])
    if rest:
        head.append(("(other)", rest))
    if base_bytes:
        head.insert(0, ("(allocated before the step: weights, optimizer state, inputs)", base_bytes))
    return base_bytes + best, head


def pool_reserved(snapshot: Mapping[str, Any], *, device: int = 0) -> List[Tuple[str, int, int]]:
    """Memory the allocator holds, per pool, at the moment of the snapshot.

    Args:
        snapshot: ``torch.cuda.memory._snapshot()`` (its ``segments`` are read).
        device: CUDA device index whose segments count.

    Returns:
        ``[(pool, reserved_bytes, allocated_bytes), ...]``: ``"default"`` for the caching allocator's own
        segments (pool id ``(0, 0)`` or none), ``"private (a, b)"`` for a private pool (a CUDA graph's),
        largest reserved first.
    """
    pools: Dict[str, List[int]] = {}
    for segment in snapshot.get("segments", []):
        if segment.get("device", device) != device:
            continue
        pool_id = tuple(segment.get("segment_pool_id") or (0, 0))
        name = "default" if pool_id == (0, 0) else f"private {pool_id}"
        sums = pools.setdefault(name, [0, 0])
        sums[0] += int(segment["total_size"])
        sums[1] += int(segment.get("allocated_size", 0))
    return sorted(((name, r, a) for name, (r, a) in pools.items()), key=lambda item: -item[1])
