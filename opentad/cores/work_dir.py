"""Guards of a training run's folder ``<work_dir>/gpu{N}_id{ID}/`` and of a resume.

* :func:`guard_work_dir`: a new training (no ``--resume``) into a folder
  that already holds checkpoints is refused (it would replace ``last.pth``
  and leave the old ``epoch_*.pth`` among the new ones), unless
  ``--move_old_run`` moves the old run's files into ``old_<timestamp>/``
  inside the folder first. It runs before anything is written there.
* :func:`tidy_work_dir`: once the loggers are up, logs that move and (rank
  0) deletes the partial checkpoint files of killed processes.
* :func:`warn_world_size_change`: a resume on another number of processes
  than the checkpoint was saved by is allowed, with one warning line.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import time
from typing import Any, List, Mapping, MutableMapping, Optional, Tuple

from opentad.registry import ConfigError
from opentad.utils.checkpoint import remove_stale_partial_files
from opentad.utils.config import load_config

__all__ = [
    "WorkDirError",
    "add_work_dir_arguments",
    "run_dir_of",
    "launch_rank_and_size",
    "existing_checkpoints",
    "move_old_run",
    "guard_work_dir",
    "tidy_work_dir",
    "warn_world_size_change",
]

logger = logging.getLogger(__name__)

#: prefix of the folders old runs are moved into (never moved again)
OLD_PREFIX = "old_"


class WorkDirError(ConfigError):
    """A training run that would overwrite or mix with an earlier run's checkpoints (bad input: one line at the CLI)."""


def add_work_dir_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--move_old_run`` (alias ``--move-old-run``) to ``tools/train.py``'s parser."""
    parser.add_argument(
        "--move_old_run", "--move-old-run", action="store_true",
        help="if the run folder holds checkpoints (and no --resume), move its files into "
        "<run folder>/old_<timestamp>/ first instead of refusing to start",
    )
    return parser


def run_dir_of(args: argparse.Namespace, environ: Optional[MutableMapping[str, str]] = None) -> Optional[str]:
    """The run folder ``prepare_run`` will use, known before any process group exists.

    ``<cfg.work_dir>/gpu{WORLD_SIZE}_id{args.id}``, with torchrun's
    ``WORLD_SIZE`` (1 without torchrun). None when the config has no ``work_dir``
    (``prepare_run`` reports that).
    """
    cfg = load_config(args.config, args.cfg_options)
    if "work_dir" not in cfg:
        return None
    return os.path.join(cfg.work_dir, f"gpu{launch_rank_and_size(environ)[1]}_id{args.id}")


def launch_rank_and_size(environ: Optional[MutableMapping[str, str]] = None) -> Tuple[int, int]:
    """``(rank, world size)`` as ``init_distributed`` will see them: torchrun's ``RANK``/``WORLD_SIZE``, else (0, 1)."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"])
    return 0, 1


def existing_checkpoints(run_dir: str) -> List[str]:
    """Names of the ``*.pth`` files in ``run_dir/checkpoint`` (partial ``.tmp`` files excluded), sorted."""
    folder = os.path.join(run_dir, "checkpoint")
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if n.endswith(".pth") and not n.startswith("."))


def _next_free_id(run_dir: str) -> Optional[int]:
    """The smallest id above the used ones among the sibling ``gpu{N}_id*`` folders with checkpoints."""
    parent, name = os.path.split(os.path.normpath(run_dir))
    match = re.fullmatch(r"(gpu\d+_id)(\d+)", name)
    if match is None or not os.path.isdir(parent):
        return None
    sibling = re.compile(re.escape(match.group(1)) + r"(\d+)")
    used = [
        int(m.group(1)) for m in map(sibling.fullmatch, os.listdir(parent))
        if m is not None and existing_checkpoints(os.path.join(parent, m.group(0)))
    ]
    return max(used) + 1 if used else None


def move_old_run(run_dir: str) -> str:
    """Move every entry of ``run_dir`` except earlier ``old_*`` folders into a new ``run_dir/old_<timestamp>/``.

    Returns:
        The folder the files went to.
    """
    stamp = time.strftime("%Y%m%d_%H%M%S")
    target, n = os.path.join(run_dir, OLD_PREFIX + stamp), 1
    while os.path.exists(target):
        target, n = os.path.join(run_dir, f"{OLD_PREFIX}{stamp}_{n}"), n + 1
    entries = [e for e in sorted(os.listdir(run_dir)) if not e.startswith(OLD_PREFIX)]
    os.makedirs(target)
    for entry in entries:
        os.rename(os.path.join(run_dir, entry), os.path.join(target, entry))
    return target


def guard_work_dir(run_dir: Optional[str], *, resume: Optional[str], move_old: bool, is_main: bool) -> Optional[str]:
    """Refuse a fresh training into a folder with checkpoints, or move the old run aside.

    Args:
        run_dir: the run folder (None: nothing to check).
        resume: the ``--resume`` checkpoint, if any (then the folder is continued as it is).
        move_old: ``--move_old_run`` was given.
        is_main: this process is rank 0 (only rank 0 moves files).

    Returns:
        The ``old_<timestamp>`` folder the old run was moved into (rank 0), else None.

    Raises:
        WorkDirError: checkpoints exist, no ``--resume`` and no ``--move_old_run``;
            the one-line message names the folder, what it holds and the three ways on.
    """
    if run_dir is None or resume is not None:
        return None
    found = existing_checkpoints(run_dir)
    if not found:
        return None
    if not move_old:
        shown = ", ".join(found[:4]) + (f", ... ({len(found)} files)" if len(found) > 4 else "")
        free = _next_free_id(run_dir)
        last = os.path.join(run_dir, "checkpoint", "last.pth")
        raise WorkDirError(
            f"{run_dir} already holds the checkpoints of an earlier run ({shown}); "
            f"continue it with --resume {last}, start a new run with another --id"
            + (f" (e.g. --id {free})" if free is not None else "")
            + " or work_dir, or pass --move_old_run to move the old files into "
            f"{os.path.join(run_dir, OLD_PREFIX)}<timestamp>/ first"
        )
    return move_old_run(run_dir) if is_main else None


def tidy_work_dir(run_dir: str, *, moved: Optional[str], is_main: bool) -> List[str]:
    """Once the loggers are up: log where :func:`guard_work_dir` moved an old run, and (rank 0) delete the
    partial checkpoint files a killed run left (:func:`~opentad.utils.checkpoint.remove_stale_partial_files`).

    Returns:
        The partial files deleted.
    """
    if moved is not None:
        logger.info("The earlier run's files were moved into %s (--move_old_run)", moved)
    return remove_stale_partial_files(os.path.join(run_dir, "checkpoint")) if is_main else []


def warn_world_size_change(
    meta: Optional[Mapping[str, Any]], *, world_size: int, batch_size: int, path: str
) -> Optional[str]:
    """Warn (one line) when a checkpoint saved by another number of processes is resumed.

    Args:
        meta: the checkpoint's ``meta`` (``world_size`` is read; absent: no warning).
        world_size: processes of this run.
        batch_size: ``solver.train.batch_size``, the global batch.
        path: the checkpoint, named in the message.

    Returns:
        The message logged, or None when the world sizes agree or are unknown.
    """
    saved = meta.get("world_size") if isinstance(meta, Mapping) else None
    if saved is None or int(saved) == world_size:
        return None
    saved = int(saved)
    was = f"{batch_size // saved}" if batch_size % saved == 0 else f"{batch_size}/{saved}"
    message = (
        f"Resuming {path}, saved by {saved} process(es), on {world_size}: the global batch stays "
        f"solver.train.batch_size={batch_size} but each process now loads {batch_size // world_size} "
        f"sample(s) a step (was {was}), and the data order and random draws differ from the run "
        "that saved it, so the result will not match an uninterrupted run"
    )
    logger.warning(message)
    return message
