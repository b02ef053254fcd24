"""Logging set-up: one readable format, rank-0 filtering, an optional file.

Library modules use ``logging.getLogger(__name__)``; everything under the
``opentad`` logger goes through the handlers installed by :func:`setup_logger`.
On ranks other than 0, records below WARNING are dropped so that a two-GPU
run prints each line once; their warnings and errors are tagged ``[rank N]``.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional

__all__ = ["setup_logger", "get_rank", "get_world_size", "RankZeroFilter"]

_FORMAT = "%(asctime)s %(levelname)s %(rank_tag)s%(name)s: %(message)s"
_DATEFMT = "%Y-%m-%d %H:%M:%S"


def get_rank() -> int:
    """Global rank from ``torch.distributed`` if initialised, else ``$RANK``, else 0."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return int(os.environ.get("RANK", 0))


def get_world_size() -> int:
    """World size from ``torch.distributed`` if initialised, else ``$WORLD_SIZE``, else 1."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size()
    except ImportError:  # pragma: no cover
        pass
    return int(os.environ.get("WORLD_SIZE", 1))


class _RankFormatter(logging.Formatter):
    """The project's format; records of ranks other than 0 carry ``[rank N]`` (rank 0's lines are unchanged)."""

    def format(self, record: logging.LogRecord) -> str:
        rank = get_rank()
        record.rank_tag = f"[rank {rank}] " if rank else ""
        return super().format(record)


class RankZeroFilter(logging.Filter):
    """Let every record through on rank 0, only warnings and errors elsewhere."""

    def filter(self, record: logging.LogRecord) -> bool:
        return get_rank() == 0 or record.levelno >= logging.WARNING


def setup_logger(log_file: Optional[str] = None, level: int = logging.INFO) -> logging.Logger:
    """Install console (and optionally file) handlers on the ``opentad`` logger.

    Calling it again replaces the handlers, so a second run in one process
    (tests, notebooks) does not print every line twice.

    Args:
        log_file: path of a log file to append to (rank 0 only); None for console only.
        level: the logger's level.

    Returns:
        The ``opentad`` logger.
    """
    logger = logging.getLogger("opentad")
    logger.setLevel(level)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = _RankFormatter(_FORMAT, datefmt=_DATEFMT)
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(formatter)
    console.addFilter(RankZeroFilter())
    logger.addHandler(console)
    if log_file is not None and get_rank() == 0:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        file_handler = logging.FileHandler(log_file, mode="a", encoding="utf8")
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    return logger
