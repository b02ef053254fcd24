"""Files written atomically (a temporary ``.{name}.tmp{pid}`` renamed over the target), and the partial files
a killed writer leaves."""
from __future__ import annotations

import logging
import os
import re
import shutil
from typing import Any, List

import torch

from opentad.utils.process import pid_alive

__all__ = ["atomic_save", "atomic_link", "remove_stale_partial_files"]

logger = logging.getLogger(__name__)

#: the temporary names of atomic_save / atomic_link: ".{file name}.tmp{pid}"
_PARTIAL_FILE = re.compile(r"^\..+\.tmp(\d+)$")


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``.

    A crash while writing leaves any previous file at ``path`` untouched and
    removes the temporary file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp_path = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with open(tmp_path, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def atomic_link(src: str, dst: str) -> None:
    """Make ``dst`` a hard link to (or, where links fail, a copy of) ``src``, replacing ``dst`` atomically."""
    tmp_path = os.path.join(os.path.dirname(os.path.abspath(dst)), f".{os.path.basename(dst)}.tmp{os.getpid()}")
    try:
        try:
            os.link(src, tmp_path)
        except OSError:
            shutil.copyfile(src, tmp_path)
        os.replace(tmp_path, dst)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def remove_stale_partial_files(folder: str) -> List[str]:
    """Delete the partial files that :func:`atomic_save` / :func:`atomic_link` of a killed process left in ``folder``.

    They are named ``.{name}.tmp{pid}``; one is stale when process ``pid`` is
    no longer alive on this host (files of live processes, this one
    included, are kept: they may be being written). Each deletion is logged.

    Args:
        folder: e.g. a run's ``checkpoint/`` folder; a missing folder has nothing to clean.

    Returns:
        The paths deleted.
    """
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        match = _PARTIAL_FILE.match(name)
        if match is None or pid_alive(int(match.group(1))):
            continue
        path = os.path.join(folder, name)
        try:
            os.remove(path)
        except FileNotFoundError:  # removed meanwhile by someone else
            continue
        removed.append(path)
        logger.info("Removed %s, a partial file of process %s, which no longer runs", path, match.group(1))
    return removed
