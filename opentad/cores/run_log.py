"""Run metrics: one JSON record per event in ``<run folder>/metrics.jsonl``, the same numbers in TensorBoard.

Every record is a JSON object on its own line with ``event`` and ``time``
(``YYYY-mm-dd HH:MM:SS``) first; the events (docs/usage.md lists their keys):

* ``run``: mode, world size, device, torch (one per ``tools/train.py`` / ``tools/test.py``);
* ``params``: trainable and total parameters, and per part of the model;
* ``train``: one per iteration: epoch, iteration, the loss terms, lr per parameter group,
  grad_norm (with clipping), ``step_s`` and ``data_s`` (seconds of the iteration, of its wait for data);
* ``throughput``: one per epoch (samples/s, peak memory per rank: :func:`log_throughput`);
* ``consistency``: the DDP / quantized-base checks (:mod:`opentad.cores.consistency`);
* ``val``, ``eval``: validation loss; mAP per tIoU and ``average_mAP``.

Records are appended with one ``write`` per line (rank 0 only), so a killed run
leaves at most a truncated last line, which :func:`read_records` skips. The
human-readable log keeps its ``[Throughput]: k=v ...`` lines (:func:`format_line`).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from opentad.cores.distributed import gather_objects
from opentad.utils.misc import count_parameters, unwrap_model

__all__ = [
    "METRICS_FILE",
    "RunMetrics",
    "append_record",
    "read_records",
    "format_line",
    "parameter_record",
    "peak_memory_gib",
    "log_throughput",
    "summarize_throughput",
]

logger = logging.getLogger(__name__)

#: the JSON-lines file of a run folder
METRICS_FILE = "metrics.jsonl"


def _plain(value: Any) -> Any:
    """JSON has no tensors or numpy scalars: their Python number (``.item()`` / ``.tolist()``)."""
    for method in ("item", "tolist"):
        if hasattr(value, method):
            return getattr(value, method)()
    raise TypeError(f"metrics value {value!r} ({type(value).__name__}) is not a number, string, list or dict")


def append_record(path: str, event: str, fields: Mapping[str, Any]) -> Dict[str, Any]:
    """Append ``{"event", "time", **fields}`` as one line to the JSON-lines file ``path``; returns the record.

    Raises:
        TypeError: a value is not JSON-able (names the event, the file and the value).
    """
    record = dict(event=event, time=time.strftime("%Y-%m-%d %H:%M:%S"), **fields)
    try:
        line = json.dumps(record, default=_plain) + "\n"
    except TypeError as exc:
        raise TypeError(f"{event} record for {path}: {exc}") from None
    with open(path, "a", encoding="utf8") as handle:
        handle.write(line)  # one write: a reader never sees half of two records
    return record


def read_records(path: str, event: Optional[str] = None) -> List[Dict[str, Any]]:
    """The records of a JSON-lines file (those of ``event`` only, if given), in order; [] if it does not exist.

    A last line without its newline (a run killed while writing) is skipped.

    Raises:
        ValueError: a complete line is not a JSON object (names the file and line).
    """
    if not os.path.isfile(path):
        return []
    with open(path, "r", encoding="utf8") as handle:
        lines = handle.read().split("\n")
    records = []
    for number, line in enumerate(lines[:-1], start=1):  # lines[-1]: "" or the truncated last record
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {number}: not a JSON record ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
        if event is None or record.get("event") == event:
            records.append(record)
    return records


class RunMetrics:
    """Where a run's records go: ``metrics.jsonl`` of its folder, and TensorBoard when a writer is set.

    Args:
        run_dir: the run folder; None on ranks other than 0 (every call is then a no-op).
        tensorboard: a ``SummaryWriter`` (or anything with ``add_scalar``), or None.
    """

    def __init__(self, run_dir: Optional[str], *, tensorboard: Any = None) -> None:
        self.path = None if run_dir is None else os.path.join(run_dir, METRICS_FILE)
        self.tensorboard = tensorboard

    def write(self, event: str, *, step: Optional[int] = None, **fields: Any) -> Optional[Dict[str, Any]]:
        """Append one record; with ``step`` and a TensorBoard writer, its floats become ``{event}/{key}``
        scalars (lists of floats ``{event}/{key}/{i}``) at that step. Returns the record (None off rank 0)."""
        if self.path is None:
            return None
        if step is not None:
            self.scalars(event, fields, step)
        return append_record(self.path, event, fields)

    def scalars(self, event: str, fields: Mapping[str, Any], step: int) -> None:
        """The float values of ``fields`` (and of their lists) to TensorBoard, tagged ``{event}/{key}``."""
        if self.tensorboard is None:
            return
        for key, value in fields.items():
            listed = isinstance(value, (list, tuple))
            for i, v in enumerate(value if listed else [value]):
                if isinstance(v, float):
                    self.tensorboard.add_scalar(f"{event}/{key}/{i}" if listed else f"{event}/{key}", v, step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text if any(c in text for c in ".ein") else text + ".0"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_format_value(v) for v in value) + "]"
    return str(value)


def format_line(tag: str, values: Mapping[str, Any]) -> str:
    """The human-readable log line ``[tag]: k1=v1 k2=v2 ...`` (floats to 6 significant digits, lists ``[a,b]``)."""
    return f"[{tag}]: " + " ".join(f"{k}={_format_value(v)}" for k, v in values.items())


def parameter_record(model: nn.Module) -> Dict[str, Any]:
    """``{"trainable", "total", "parts": {child: [trainable, total]}}`` of a model (children holding parameters)."""
    trainable, total = count_parameters(model)
    parts = {name: list(count_parameters(child)) for name, child in unwrap_model(model).named_children()}
    return dict(trainable=trainable, total=total, parts={k: v for k, v in parts.items() if v[1]})


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
    metrics: Optional[RunMetrics] = None,
) -> Dict[str, Any]:
    """Log (rank 0) and return the epoch's throughput record; every rank must call it (one all-gather).

    Args:
        epoch: the epoch index.
        iters: optimizer steps in the epoch.
        samples: samples of all ranks together in the epoch.
        seconds: wall time of the epoch's training loop on this rank (data loading included).
        device: this rank's device (peak memory is read on CUDA only).
        world_size: number of processes.
        loss: the epoch's mean training loss (``cost``, averaged over ranks), if known.
        metrics: where the ``throughput`` record goes (besides the ``[Throughput]`` log line).

    Returns:
        The record: ``samples_per_s`` is ``samples / seconds`` of rank 0; ``peak_alloc_gib`` and
        ``peak_reserved_gib`` hold one value per rank (rank order), None off CUDA.
    """
    peaks = gather_objects(peak_memory_gib(device))
    on_cuda = all(p is not None for p in peaks)
    record = dict(
        epoch=epoch, iters=iters, samples=samples, seconds=float(seconds),
        samples_per_s=float(samples / seconds) if seconds > 0 else math.nan, world_size=world_size,
        loss=None if loss is None else float(loss),
        peak_alloc_gib=[p[0] for p in peaks] if on_cuda else None,
        peak_reserved_gib=[p[1] for p in peaks] if on_cuda else None,
    )
    logger.info(format_line("Throughput", record))
    if metrics is not None:
        metrics.write("throughput", step=epoch, **record)
    return record


def summarize_throughput(records: Sequence[Mapping[str, Any]], *, skip_first: bool = True) -> Dict[str, Any]:
    """Steady-state figures of a run's ``throughput`` records.

    Args:
        records: one per epoch (:func:`read_records` with ``event="throughput"``).
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
        samples_per_s=sum(int(r["samples"]) for r in kept) / seconds if seconds > 0 else math.nan,
    )
    for key in ("peak_alloc_gib", "peak_reserved_gib"):
        lists = [r[key] for r in records if r.get(key) is not None]
        out[key] = [max(values) for values in zip(*lists)] if lists else None
    return out
