"""Machine-readable lines of the training log, and the per-epoch throughput / memory line.

The runner writes, besides its human-readable lines, lines a script can parse::

    [Throughput]: epoch=3 iters=50 samples=100 seconds=7.51234 samples_per_s=13.3114 world_size=2 \
loss=1.23456 peak_alloc_gib=[2.91016,2.90527] peak_reserved_gib=[3.21094,3.1875]
    [Consistency]: tag=epoch epoch=3 world_size=2 ranks_agree=True ...

A line is its tag in square brackets and a colon, then ``key=value`` pairs
separated by single spaces; values hold no spaces (lists are written
``[a,b]``). :func:`parse_lines` reads them back from a log's text, whatever
the logger put before the tag.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch

from opentad.cores.distributed import gather_objects

__all__ = ["THROUGHPUT_TAG", "format_line", "parse_lines", "peak_memory_gib", "log_throughput", "summarize_throughput"]

logger = logging.getLogger(__name__)

THROUGHPUT_TAG = "Throughput"
_PAIR = re.compile(r"(\w+)=(\S+)")


def _format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text if any(c in text for c in ".ein") else text + ".0"  # parses back as a float
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_format_value(v) for v in value) + "]"
    text = str(value)
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"log value {value!r} is empty or holds whitespace; it would not parse back")
    return text


def format_line(tag: str, values: Mapping[str, Any]) -> str:
    """``[tag]: k1=v1 k2=v2 ...`` (floats to 6 significant digits, lists as ``[a,b]``, None as ``None``).

    Raises:
        ValueError: a key is not a word, or a value's text is empty or holds whitespace.
    """
    bad = [k for k in values if not re.fullmatch(r"\w+", k)]
    if bad:
        raise ValueError(f"log keys must be words (letters, digits, _), got {bad}")
    return f"[{tag}]: " + " ".join(f"{k}={_format_value(v)}" for k, v in values.items())


def _parse_value(text: str) -> Any:
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    if text.startswith("[") and text.endswith("]"):
        return [_parse_value(part) for part in text[1:-1].split(",") if part]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_lines(text: str, tag: str) -> List[Dict[str, Any]]:
    """Every ``[tag]:`` line of ``text`` as a dict (ints, floats, bools, None, lists, strings), in order."""
    marker = f"[{tag}]: "
    records = []
    for line in text.splitlines():
        where = line.find(marker)
        if where >= 0:
            body = line[where + len(marker):]
            records.append({k: _parse_value(v) for k, v in _PAIR.findall(body)})
    return records


def peak_memory_gib(device: torch.device) -> Optional[List[float]]:
    """``[max allocated, max reserved]`` GiB on a CUDA ``device`` since the process started; None elsewhere."""
    if device.type != "cuda":
        return None
    return [torch.cuda.max_memory_allocated(device) / 2**30, torch.cuda.max_memory_reserved(device) / 2**30]


def log_throughput(
    *,
    epoch: int,
    iters: int,
    samples: int,
    seconds: float,
    device: torch.device,
    world_size: int,
    loss: Optional[float] = None,
) -> Dict[str, Any]:
    """Log (rank 0) and return the epoch's ``[Throughput]`` record; every rank must call it (one all-gather).

    Args:
        epoch: the epoch index.
        iters: optimizer steps in the epoch.
        samples: samples of all ranks together in the epoch.
        seconds: wall time of the epoch's training loop on this rank (data loading included).
        device: this rank's device (peak memory is read on CUDA only).
        world_size: number of processes.
        loss: the epoch's mean training loss (``cost``, averaged over ranks), if known.

    Returns:
        The record: ``samples_per_s`` is ``samples / seconds`` of rank 0; ``peak_alloc_gib`` and
        ``peak_reserved_gib`` hold one value per rank (rank order), None off CUDA.
    """
    peaks = gather_objects(peak_memory_gib(device))
    on_cuda = all(p is not None for p in peaks)
    record = dict(
        epoch=epoch, iters=iters, samples=samples, seconds=float(seconds),
        samples_per_s=float(samples / seconds) if seconds > 0 else float("nan"), world_size=world_size,
        loss=None if loss is None else float(loss),
        peak_alloc_gib=[p[0] for p in peaks] if on_cuda else None,
        peak_reserved_gib=[p[1] for p in peaks] if on_cuda else None,
    )
    logger.info(format_line(THROUGHPUT_TAG, record))
    return record


def summarize_throughput(records: Sequence[Mapping[str, Any]], *, skip_first: bool = True) -> Dict[str, Any]:
    """Steady-state figures of a run's ``[Throughput]`` records.

    Args:
        records: :func:`parse_lines` of a log, one per epoch.
        skip_first: leave out the first epoch (warm-up: CUDA context, kernels, workers) when
            there are more.

    Returns:
        ``{"epochs", "iters", "samples_per_s" (samples / seconds over the kept epochs),
        "peak_alloc_gib", "peak_reserved_gib"}`` (per rank, the maximum over all epochs; None off CUDA).
        Empty when there are no records.
    """
    if not records:
        return {}
    kept = list(records[1:]) if skip_first and len(records) > 1 else list(records)
    seconds = sum(float(r["seconds"]) for r in kept)
    out: Dict[str, Any] = dict(
        epochs=len(records), iters=sum(int(r["iters"]) for r in records),
        samples_per_s=sum(int(r["samples"]) for r in kept) / seconds if seconds > 0 else float("nan"),
    )
    for key in ("peak_alloc_gib", "peak_reserved_gib"):
        lists = [r[key] for r in records if r.get(key) is not None]
        out[key] = [max(values) for values in zip(*lists)] if lists else None
    return out

