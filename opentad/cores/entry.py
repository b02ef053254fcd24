"""How a failed ``tools/train.py`` / ``tools/test.py`` run is reported: once, and one line for bad input.

A run has two stages, and they fail differently:

* **Set-up** (datasets, loaders, model, the checkpoint to resume or test;
  the config and work dir are checked even before): every rank reads the
  same config and files, so bad input there (a key that does not bind, a
  batch that does not divide over the processes, a label missing from the
  class map, a missing file: any ``ValueError``, ``FileNotFoundError``,
  :class:`CheckpointError` or :class:`VideoReadError`) fails every rank the
  same way. Rank 0 prints ONE line, ``PROG: error: MESSAGE``, on stderr (and
  ``X failed on rank 0 of N: MESSAGE`` into the run's log file); the other
  ranks exit quietly with the same status, 1. They first wait for rank 0's
  set-up outcome, which rank 0 publishes in the process group's key-value
  store (:data:`SETUP_KEY`): ``"failed"`` once its line is printed (the other
  ranks then exit quietly), ``"ok"`` when its set-up ended well (a failure
  that is a rank's own: that rank prints its line itself,
  ``PROG: error: [rank R] MESSAGE``): a failure is never silent, and no
  rank's speed matters. A rank 0 that publishes nothing (a bug in its
  set-up, or blocked in a set-up collective by the other rank's failure)
  leaves the others to print their own line after
  :data:`OUTCOME_TIMEOUT_S`, unless torchrun ends them first. Without a process group (bad input met before
  ``init_distributed``, where every rank does the same little work), the
  other ranks wait :data:`GRACE_S` seconds instead: torchrun ends every
  worker as soon as one exits, so rank 0 gets the time to print its line.
* **Running** (epochs, inference, evaluation): a failure can be one rank's
  own (a missing or damaged video in its shard), so every rank that fails
  logs it, once: one line for bad input (the ``user_errors`` of the caller:
  a missing file, an unreadable video, an evaluation file whose labels are
  not in the class map), the traceback for anything else (tagged ``[rank N]``
  on ranks other than 0). The tool then exits with status 1 without printing
  it again. An exception from a ``DataLoader`` worker process carries the
  worker's traceback in its message (torch puts it there); the line holds
  the original message only.

Anything else during set-up is a bug, not bad input, and is logged with its
traceback like a running failure. torchrun's summary of the failed workers
(``ChildFailedError``) is the launcher's, printed after this.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from datetime import timedelta
from typing import Any, Iterator, Optional, Tuple, Type

import torch.distributed as dist

from opentad.datasets.video_reader import VideoReadError
from opentad.utils.checkpoint import CheckpointError

__all__ = ["SETUP_MISTAKES", "SETUP_KEY", "RunStage", "reported_failures", "failure_exit_code", "one_line",
           "publish_setup_outcome"]

logger = logging.getLogger(__name__)

#: bad input when raised during set-up (ConfigError, WorkDirError and the safe-load errors are ValueErrors).
SETUP_MISTAKES: Tuple[Type[BaseException], ...] = (ValueError, FileNotFoundError, CheckpointError, VideoReadError)
#: set on an exception once reported: "setup" (rank 0 prints one line) or "logged" (nothing more to print)
_REPORTED = "_opentad_reported"
EXIT_FAILURE = 1
#: seconds a rank other than 0 waits before reporting a set-up failure met without a process group (docstring)
GRACE_S = 5.0
#: the store key where rank 0 publishes how its set-up ended: "ok" or "failed" (module docstring)
SETUP_KEY = "opentad/setup_outcome_of_rank_0"
#: seconds a rank other than 0 waits for rank 0's outcome before printing its own line: the bound for a rank 0
#: that never publishes (blocked in a collective of set-up, e.g. DDP's, by this very failure; or failed with a
#: bug, whose traceback it logs) and is not ended by torchrun meanwhile. Well under the process groups' own
#: timeouts (10 min and more), so that the cause still shows; far above the spread of two ranks' set-up.
OUTCOME_TIMEOUT_S = 120.0


def _run_store() -> Optional[Any]:
    """The process group's key-value store (torchrun's), or None without a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    getter = getattr(dist.distributed_c10d, "_get_default_store", None)
    if getter is None:
        return None
    try:
        return getter()
    except (RuntimeError, ValueError):
        return None


def publish_setup_outcome(outcome: str) -> None:
    """Rank 0: publish ``"ok"`` or ``"failed"`` (its set-up) for the other ranks; a no-op without a store.

    Raises:
        ValueError: ``outcome`` is neither.
    """
    if outcome not in ("ok", "failed"):
        raise ValueError(f"outcome must be 'ok' or 'failed', got {outcome!r}")
    store = _run_store()
    if store is None:
        return
    try:
        store.set(SETUP_KEY, outcome)
    except RuntimeError as exc:  # the store is gone: the other ranks report for themselves
        logger.debug("could not publish the set-up outcome %r: %s", outcome, exc)


def _rank_0_failed_too() -> Optional[bool]:
    """A rank other than 0 after its set-up failed: whether rank 0's set-up failed (and was reported).

    Returns:
        True or False from the store (waiting up to :data:`OUTCOME_TIMEOUT_S` for rank 0), None without a store.
    """
    store = _run_store()
    if store is None:
        return None
    try:
        store.wait([SETUP_KEY], timedelta(seconds=OUTCOME_TIMEOUT_S))
        return store.get(SETUP_KEY) == b"failed"
    except RuntimeError:  # timed out, or the store went away with rank 0: report this rank's own failure
        return False


class RunStage:
    """The stage of a run (:func:`reported_failures` yields one); call :meth:`running` when set-up is over."""

    def __init__(self, rank: int = 0) -> None:
        self.setup = True
        self.rank = rank

    def running(self) -> None:
        """From now on, every rank that fails reports its failure; rank 0 tells the others (module docstring)."""
        self.setup = False
        if self.rank == 0:
            publish_setup_outcome("ok")


def one_line(exc: BaseException) -> str:
    """The message of ``exc``; for one re-raised from a ``DataLoader`` worker, without the worker's traceback.

    torch re-raises a worker's exception as ``type(exc)("Caught X in DataLoader worker process N.\\n
    Original Traceback (most recent call last): ...\\nmodule.X: MESSAGE")``; MESSAGE is what is returned.
    """
    text = str(exc)
    if not (text.startswith("Caught ") and "\nOriginal Traceback" in text):
        return text
    cls = type(exc)
    for head in (f"\n{cls.__module__}.{cls.__qualname__}: ", f"\n{cls.__qualname__}: "):
        at = text.rfind(head)
        if at >= 0:
            return text[at + len(head):].strip()
    return text


def _log_to_files_only(record: logging.LogRecord) -> None:
    """Hand ``record`` to the file handlers of the ``opentad`` logger (the run's log file), not the console."""
    for handler in logging.getLogger("opentad").handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)


@contextlib.contextmanager
def reported_failures(
    *, rank: int, world_size: int, what: str, user_errors: Tuple[Type[BaseException], ...]
) -> Iterator[RunStage]:
    """Report an exception raised in the block once (module docstring), then let it propagate.

    Args:
        rank, world_size: this process's place in the run.
        what: the run in the message: ``"Training"`` gives ``Training failed on rank R of N``.
        user_errors: exceptions that are bad input while running (one line, no traceback).

    Yields:
        The :class:`RunStage`; the block calls ``stage.running()`` once set-up is done.
    """
    stage = RunStage(rank)
    try:
        yield stage
    except Exception as exc:
        message = f"{what} failed on rank {rank} of {world_size}"
        if stage.setup and isinstance(exc, SETUP_MISTAKES + tuple(user_errors)):
            # the same on every rank: rank 0's log file gets the line, run_cli prints it once on the console
            _log_to_files_only(logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "%s: %s",
                                                 (message, one_line(exc)), None))
            setattr(exc, _REPORTED, "setup")
        elif isinstance(exc, tuple(user_errors)):
            logger.error("%s: %s", message, one_line(exc))
            setattr(exc, _REPORTED, "logged")
        else:
            logger.exception(message)
            setattr(exc, _REPORTED, "logged")  # nothing published: another rank's own mistake still speaks
        raise


def _launch_rank() -> int:
    """torchrun's ``RANK`` (0 without torchrun), from the environment: the process group may be gone."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def failure_exit_code(
    exc: BaseException, *, prog: str, user_errors: Tuple[Type[BaseException], ...], debug: bool
) -> Optional[int]:
    """What the command line does with ``exc``: the exit status after reporting it, or None to re-raise it.

    Bad input (reported at set-up, or raised before it and in ``user_errors``) becomes ``PROG: error:
    MESSAGE`` on stderr, printed by rank 0 only; a failure :func:`reported_failures` already logged is not
    printed again. With ``debug`` (``--debug``) and for anything else: None (the stack trace).
    """
    reported = getattr(exc, _REPORTED, None)
    if debug or not isinstance(exc, Exception):
        return None
    if reported == "logged":
        return EXIT_FAILURE
    if reported == "setup" or isinstance(exc, tuple(user_errors)):
        rank = _launch_rank()
        if rank != 0:
            rank_0_failed = _rank_0_failed_too()
            if rank_0_failed:
                return EXIT_FAILURE  # rank 0 printed the line
            if rank_0_failed is None:
                time.sleep(GRACE_S)  # no store: under torchrun, rank 0's own failure ends this process meanwhile
        sys.stderr.write(f"{prog}: error: {'' if rank == 0 else f'[rank {rank}] '}{one_line(exc)}\n")
        if rank == 0:
            sys.stderr.flush()
            publish_setup_outcome("failed")
        return EXIT_FAILURE
    return None
