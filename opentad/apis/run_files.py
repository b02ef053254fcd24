"""Reading the files of a run folder (``<work_dir>/gpu{N}_id{ID}/``): metrics, logs, config.

* ``metrics.jsonl``: the run's JSON records (:mod:`opentad.cores.run_log`):
  ``run`` (world size), ``params`` (trainable / total, per part), ``eval``
  (``epoch``, ``num_videos``, ``average_mAP``, ``mAP@0.3``, ...; ``epoch`` is
  null for ``tools/test.py``), ...
* upstream OpenTAD's run folders have only text logs (``log.json``): the
  evaluator's ``Average-mAP: X (%)`` and ``mAP at tIoU T is Y%`` lines give
  their metrics.
* ``<config name>.py``: the resolved config; upstream copies the raw file,
  whose ``_base_`` does not resolve in the run folder, and then the log's
  ``Config:`` dump is used.
"""
from __future__ import annotations

import glob
import logging
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mmengine.config import Config

from opentad.cores.run_log import METRICS_FILE, read_records

logger = logging.getLogger(__name__)

__all__ = [
    "METRICS_FILE",
    "RUN_DIR",
    "find_run_dirs",
    "read_logs",
    "read_metrics",
    "last_record",
    "eval_metrics",
    "trained_here",
    "parse_log_metrics",
    "load_run_config",
]

#: the name of a run folder: ``gpu{N}_id{ID}``.
RUN_DIR = re.compile(r"^gpu(\d+)_id(\d+)$")
_LOG_PATTERNS = ("train_*.log", "test_*.log", "log.json", "*.log")
_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} ")


def find_run_dirs(paths: Sequence[str]) -> List[str]:
    """Run folders among ``paths``: a ``gpu{N}_id{ID}`` folder itself, or every one below a parent folder.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: a path holds no run folder.
    """
    runs: List[str] = []
    for path in paths:
        if not os.path.isdir(path):
            raise FileNotFoundError(f"Work dir not found: {path}")
        if RUN_DIR.match(os.path.basename(os.path.normpath(path))):
            runs.append(os.path.normpath(path))
            continue
        found = sorted(root for root, _, _ in os.walk(path) if RUN_DIR.match(os.path.basename(root)))
        if not found:
            raise ValueError(f"{path} holds no run folder (gpu{{N}}_id{{ID}}/ as tools/train.py writes)")
        runs.extend(found)
    return runs


def _log_files(run_dir: str) -> List[str]:
    files = {f for pattern in _LOG_PATTERNS for f in glob.glob(os.path.join(run_dir, pattern))}
    return sorted(files, key=lambda f: (os.path.getmtime(f), f))


def trained_here(run_dir: str) -> bool:
    """Whether training ran in the folder: a training log (``train_*.log``, upstream's ``log.json``) or a
    checkpoint under ``checkpoint/``. Else only ``tools/test.py`` ran there, and its ``gpu{N}`` counts
    test processes, not training GPUs."""
    patterns = ("train_*.log", "log.json", os.path.join("checkpoint", "*.pth"))
    return any(glob.glob(os.path.join(run_dir, pattern)) for pattern in patterns)


def read_logs(run_dir: str) -> str:
    """The run's log files, oldest first, joined."""
    texts = []
    for path in _log_files(run_dir):
        with open(path, "r", encoding="utf8", errors="replace") as handle:
            texts.append(handle.read())
    return "\n".join(texts)


def read_metrics(run_dir: str) -> List[Dict[str, Any]]:
    """The records of the run's ``metrics.jsonl`` ([] when there is none)."""
    return read_records(os.path.join(run_dir, METRICS_FILE))


def last_record(records: Sequence[Mapping[str, Any]], event: str) -> Optional[Mapping[str, Any]]:
    """The last record of ``event``, or None."""
    return next((r for r in reversed(records) if r.get("event") == event), None)


def eval_metrics(record: Mapping[str, Any]) -> Tuple[Optional[float], Dict[float, float], str]:
    """``(average, {tIoU: mAP}, evaluated)`` of an ``eval`` record; ``evaluated`` is ``epoch E`` or ``test``."""
    per = {round(float(k[len("mAP@"):]), 4): float(v) for k, v in record.items() if k.startswith("mAP@")}
    average = record.get("average_mAP")
    evaluated = "test" if record.get("epoch") is None else f"epoch {record['epoch']}"
    return (None if average is None else float(average)), per, evaluated


def _percent(text: str) -> float:
    return float(text.strip().rstrip("%")) / 100  # float() reads "nan" too


def parse_log_metrics(text: str) -> Optional[Tuple[Optional[float], Dict[float, float]]]:
    """The last evaluation in an upstream text log: ``(average_mAP, {tIoU: mAP})`` as fractions, or None.

    Reads the evaluator's lines ``Average-mAP: 68.12 (%)`` followed by ``mAP at tIoU 0.30 is 82.11%``.
    """
    last = None
    for line in text.splitlines():
        if "Average-mAP:" in line:
            last = (_percent(line.split("Average-mAP:", 1)[1].split("(%)")[0]), {})
        elif "mAP at tIoU" in line and " is " in line and last is not None:
            tiou, _, value = line.split("mAP at tIoU", 1)[1].partition(" is ")
            last[1][round(float(tiou), 4)] = _percent(value)
    return last


def _config_from_log(text: str) -> Optional[Config]:
    """The last ``Config:`` dump of a log (the engine's and upstream's), parsed back."""
    lines, start = text.splitlines(), None
    for i, line in enumerate(lines):
        if line.rstrip().endswith("Config:") and _LOG_LINE.match(line):
            start = i + 1
    if start is None:
        return None
    end = next((j for j in range(start, len(lines)) if _LOG_LINE.match(lines[j])), len(lines))
    try:
        return Config.fromstring("\n".join(lines[start:end]), ".py")
    except Exception:  # noqa: BLE001 - a dump that does not parse is reported as "no config"
        return None


def load_run_config(run_dir: str, log_text: str) -> Tuple[Optional[Config], str]:
    """``(config, file name)``: the saved ``.py`` config, else the log's dump (None when neither loads)."""
    names = sorted(f for f in os.listdir(run_dir) if f.endswith(".py"))
    for name in names:
        try:
            return Config.fromfile(os.path.join(run_dir, name)), name
        except Exception:  # noqa: BLE001 - upstream copies the raw file, whose _base_ does not resolve here
            logger.debug("cannot load %s; trying the log's config dump", name)
    return _config_from_log(log_text), (names[0] if names else "")
