"""Reading the files of a run folder (``<work_dir>/gpu{N}_id{ID}/``): logs, evaluation records, config.

* ``eval_results.jsonl``: one JSON line per evaluation, appended by the test
  engine (``{"time", "epoch", "num_videos", "metrics": {"average_mAP",
  "mAP@0.3", ...}}``; ``epoch`` is null for ``tools/test.py``).
* the log files (``train_*.log``, ``test_*.log``; upstream OpenTAD's
  ``log.json`` too), read in order of modification time: the evaluator's
  ``Average-mAP: X (%)`` and ``mAP at tIoU T is Y%`` lines, ``trainable
  params: N || all params: M``, ``world size N`` and the ``Config:`` dump.
* ``<config name>.py``: the resolved config; upstream copies the raw file,
  whose ``_base_`` does not resolve in the run folder, and then the log's
  ``Config:`` dump is used.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

from opentad.cores.test_engine import EVAL_RECORD_FILE

logger = logging.getLogger(__name__)

__all__ = [
    "EVAL_RECORD_FILE",
    "RUN_DIR",
    "find_run_dirs",
    "read_logs",
    "trained_here",
    "parse_log_metrics",
    "read_eval_record",
    "parse_parameter_counts",
    "parse_backbone_parameter_counts",
    "parse_world_size",
    "load_run_config",
]

#: the name of a run folder: ``gpu{N}_id{ID}``.
RUN_DIR = re.compile(r"^gpu(\d+)_id(\d+)$")
_LOG_PATTERNS = ("train_*.log", "test_*.log", "log.json", "*.log")
_AVERAGE = re.compile(r"Average-mAP:\s*(\S+)\s*\(%\)")
_PER_TIOU = re.compile(r"mAP at tIoU\s+([0-9.]+)\s+is\s+(\S+?)%")
_PARAMS = re.compile(r"trainable params:\s*([\d,]+)\s*\|\|\s*all params:\s*([\d,]+)")
_BACKBONE_PARAMS = re.compile(r"trainable params by part:(?:.*?\|\|)?\s*backbone ([\d,]+) / ([\d,]+)")
# this project's "world size N"; upstream OpenTAD's "Using DDP with total N GPUS..."
_WORLD = re.compile(r"world size (\d+)|Using DDP with total (\d+) GPUS")
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


def _to_float(text: str) -> float:
    return float("nan") if text.strip().lower() == "nan" else float(text)


def parse_log_metrics(text: str) -> Optional[Tuple[Optional[float], Dict[float, float]]]:
    """The last evaluation in a log: ``(average_mAP, {tIoU: mAP})`` as fractions, or None if there is none.

    Reads the evaluator's lines ``Average-mAP: 68.12 (%)`` followed by
    ``mAP at tIoU 0.30 is 82.11%`` (this project's and upstream's format).
    """
    last = None
    for line in text.splitlines():
        average = _AVERAGE.search(line)
        if average:
            last = (_to_float(average.group(1)) / 100, {})
            continue
        per = _PER_TIOU.search(line)
        if per and last is not None:
            last[1][round(float(per.group(1)), 4)] = _to_float(per.group(2)) / 100
    return last


def read_eval_record(run_dir: str) -> Optional[Tuple[Optional[float], Dict[float, float], str]]:
    """``(average, {tIoU: mAP}, evaluated)`` of the last ``eval_results.jsonl`` line, or None.

    ``evaluated`` is ``epoch E`` (an evaluation during training) or ``test`` (``tools/test.py``).
    """
    path = os.path.join(run_dir, EVAL_RECORD_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, "r", encoding="utf8") as handle:
        lines = [line for line in handle if line.strip()]
    if not lines:
        return None
    try:
        record = json.loads(lines[-1])
        metrics = record["metrics"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: last line is not an evaluation record ({exc})") from exc
    per = {round(float(k.split("@")[1]), 4): float(v) for k, v in metrics.items() if re.fullmatch(r"mAP@[0-9.]+", k)}
    epoch = record["epoch"] if "epoch" in record else None
    evaluated = "test" if epoch is None else f"epoch {epoch}"
    return (float(metrics["average_mAP"]) if "average_mAP" in metrics else None), per, evaluated


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


def parse_parameter_counts(text: str) -> Optional[Tuple[int, int]]:
    """``(trainable, total)`` from the last ``trainable params: N || all params: M`` line, or None."""
    found = _PARAMS.findall(text)
    return None if not found else (int(found[-1][0].replace(",", "")), int(found[-1][1].replace(",", "")))


def parse_backbone_parameter_counts(text: str) -> Optional[Tuple[int, int]]:
    """``(trainable, total)`` of the backbone from the last ``trainable params by part:`` line, or None."""
    found = _BACKBONE_PARAMS.findall(text)
    return None if not found else (int(found[-1][0].replace(",", "")), int(found[-1][1].replace(",", "")))


def parse_world_size(text: str) -> Optional[int]:
    """The last number of processes the engine logged (``world size N``, upstream's ``total N GPUS``), or None."""
    found = _WORLD.findall(text)
    return int(found[-1][0] or found[-1][1]) if found else None
