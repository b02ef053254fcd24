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
  ranks exit quietly with the same status, 1. They first wait
  :data:`GRACE_S` seconds: torchrun ends every worker as soon as one exits,
  so rank 0 gets the time to print its line, and a rank whose failure is its
  own (rank 0 went on) is still alive afterwards and prints its line itself,
  ``PROG: error: [rank R] MESSAGE``: a failure is never silent.
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
from typing import Iterator, Optional, Tuple, Type

from opentad.datasets.video_reader import VideoReadError
from opentad.utils.checkpoint import CheckpointError

__all__ = ["SETUP_MISTAKES", "RunStage", "reported_failures", "failure_exit_code", "one_line"]

logger = logging.getLogger(__name__)

#: bad input when raised during set-up (ConfigError, WorkDirError and the safe-load errors are ValueErrors).
SETUP_MISTAKES: Tuple[Type[BaseException], ...] = (ValueError, FileNotFoundError, CheckpointError, VideoReadError)
#: set on an exception once reported: "setup" (rank 0 prints one line) or "logged" (nothing more to print)
_REPORTED = "_opentad_reported"
EXIT_FAILURE = 1
#: seconds a rank other than 0 waits before reporting a set-up failure (module docstring)
GRACE_S = 5.0


class RunStage:
    """The stage of a run (:func:`reported_failures` yields one); call :meth:`running` when set-up is over."""

    def __init__(self) -> None:
        self.setup = True

    def running(self) -> None:
        """From now on, every rank that fails reports its failure (module docstring)."""
        self.setup = False


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
    stage = RunStage()
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
            setattr(exc, _REPORTED, "logged")
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
            time.sleep(GRACE_S)  # under torchrun, rank 0's own failure ends this process meanwhile
        sys.stderr.write(f"{prog}: error: {'' if rank == 0 else f'[rank {rank}] '}{one_line(exc)}\n")
        return EXIT_FAILURE
    return None
