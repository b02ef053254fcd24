"""Command lines of ``tools/train.py`` / ``tools/test.py`` and the set-up every run shares.

:func:`prepare_run` loads and validates the config (before anything is
built), joins the torchrun process group if there is one, seeds, creates the
work dir ``<work_dir>/gpu{N}_id{ID}/`` (as upstream), saves the resolved config
there and installs the loggers (console, plus a log file on rank 0).

:func:`run_cli` is the tools' entry point: bad input (:data:`USER_ERRORS`: a
config problem, a missing, unreadable, refused or mismatched file, a damaged
video, an evaluation file whose labels are not in the class map) ends the
process with one line on stderr and exit status 1, no stack trace
(``--debug`` shows it). A malformed command line is one line too (status 2).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn as nn

from opentad.cores.distributed import DistEnv, init_distributed
from opentad.cores.entry import failure_exit_code
from opentad.cores.run_log import RunMetrics, parameter_record
from opentad.datasets.video_reader import VideoReadError
from opentad.evaluations import GroundTruthError
from opentad.registry import DETECTORS, ConfigError, build
from opentad.utils.checkpoint import CheckpointError
from opentad.utils.safe_load import UnreadableFileError, UntrustedFileError
from opentad.utils.config import Config, DictAction, load_config, validate_config
from opentad.utils.logger import setup_logger
from opentad.utils.misc import format_parameter_count, format_parameter_parts, set_seed

__all__ = [
    "RunContext",
    "USER_ERRORS",
    "train_parser",
    "test_parser",
    "prepare_run",
    "run_cli",
    "build_model",
    "build_loader",
    "section",
]

logger = logging.getLogger(__name__)

#: errors caused by bad input (config, files), also when met while running (a damaged video, an evaluation
#: file with labels outside the class map); reported in one line naming the file or key at fault.
USER_ERRORS = (ConfigError, CheckpointError, FileNotFoundError, UntrustedFileError, UnreadableFileError,
               VideoReadError, GroundTruthError)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``PROG: error: MESSAGE (see --help)``, exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse's contract
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("config", metavar="FILE", help="path to the config file")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--id", type=int, default=0, help="experiment id: the work dir ends in gpu{N}_id{ID}")
    parser.add_argument("--not_eval", action="store_true", help="infer (and save) only, do not evaluate")
    parser.add_argument(
        "--cfg-options", "--cfg_options", nargs="+", action=DictAction, default=None,
        help="override config keys, e.g. workflow.end_epoch=3 solver.train.batch_size=4",
    )
    parser.add_argument("--debug", action="store_true", help="show the stack trace of errors caused by bad input")
    return parser


def train_parser() -> argparse.ArgumentParser:
    """Arguments of ``tools/train.py`` (upstream's)."""
    parser = _common_args(OneLineParser(description="Train a temporal action detector"))
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", default=None, help="checkpoint to resume training from (e.g. .../last.pth)")
    start.add_argument(
        "--load-from", "--load_from", dest="load_from", default=None, metavar="CKPT",
        help="start a new run from a detector checkpoint's weights only (no optimizer, scheduler or epoch); "
        "overrides the config's load_from",
    )
    parser.add_argument("--disable_deterministic", action="store_true", help="faster, non-deterministic kernels")
    return parser


def test_parser() -> argparse.ArgumentParser:
    """Arguments of ``tools/test.py`` (upstream's)."""
    parser = _common_args(OneLineParser(description="Test a temporal action detector"))
    parser.add_argument(
        "--checkpoint", default=None,
        help="checkpoint to test (default: checkpoint/epoch_{inference.test_epoch}.pth, else best.pth, else last.pth)",
    )
    return parser


@dataclass
class RunContext:
    """Everything a run shares: the config, where it runs, its folder, seed and metrics sink (rank 0 writes)."""

    cfg: Config
    env: DistEnv
    work_dir: str
    seed: int
    config_path: str
    metrics: RunMetrics = field(default_factory=lambda: RunMetrics(None))


def _save_and_log_config(cfg: Config, config_path: str, work_dir: str) -> None:
    """Rank 0: the resolved config into the work dir, and into the log (formatted once: yapf takes CPU-seconds)."""
    path = os.path.join(work_dir, os.path.basename(config_path))
    text = cfg.pretty_text
    if path.endswith(".py"):
        with open(path, "w", encoding="utf-8") as f:  # what cfg.dump(path) writes, without formatting it again
            f.write(text)
    else:
        cfg.dump(path)
    logger.info("Resolved config saved to %s", path)
    logger.info("Config:\n%s", text)


def prepare_run(args: argparse.Namespace, *, mode: str) -> RunContext:
    """Config, process group, seed, work dir, saved config and loggers, in that order.

    Args:
        args: parsed :func:`train_parser` / :func:`test_parser` arguments.
        mode: ``"train"`` or ``"test"`` (names the log file).

    Raises:
        FileNotFoundError: the config file does not exist.
        ConfigError: the config has unknown types or keys (all listed).
    """
    cfg = load_config(args.config, args.cfg_options)
    validate_config(cfg, source=args.config)
    if "work_dir" not in cfg:
        raise ConfigError(
            f"{args.config}: no 'work_dir' (the folder runs write to); set it in the file or --cfg-options work_dir=..."
        )
    env = init_distributed()
    deterministic = not (mode == "train" and args.disable_deterministic)
    set_seed(args.seed, deterministic=deterministic)
    work_dir = os.path.join(cfg.work_dir, f"gpu{env.world_size}_id{args.id}")
    if env.is_main:
        os.makedirs(work_dir, exist_ok=True)
    log_file = os.path.join(work_dir, f"{mode}_{time.strftime('%Y%m%d_%H%M%S')}.log")
    setup_logger(log_file if env.is_main else None)
    logger.info(
        "torch %s, CUDA %s, device %s, world size %d", torch.__version__, torch.version.cuda, env.device, env.world_size
    )
    logger.info("Work dir: %s", work_dir)
    if env.is_main:  # the other ranks' INFO lines are filtered out: they would format the config for nothing
        _save_and_log_config(cfg, args.config, work_dir)
    metrics = RunMetrics(work_dir if env.is_main else None)
    metrics.write("run", mode=mode, world_size=env.world_size, device=str(env.device), torch=torch.__version__)
    return RunContext(cfg=cfg, env=env, work_dir=work_dir, seed=args.seed, config_path=args.config, metrics=metrics)


def run_cli(entry: Callable[[Optional[Sequence[str]]], Any], argv: Optional[Sequence[str]] = None, *,
            prog: Optional[str] = None) -> int:
    """Run ``entry(argv)`` (``train`` / ``test``); bad input becomes one line on stderr.

    Args:
        entry: the run function; it parses ``argv`` itself.
        argv: the arguments (default ``sys.argv[1:]``).
        prog: the program name in messages (default ``sys.argv[0]``'s name).

    Returns:
        The exit status: 0, or 1 after an error of :data:`USER_ERRORS` (re-raised with ``--debug``)
        or a failure the run already logged; under torchrun only rank 0 prints
        (:mod:`opentad.cores.entry`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or os.path.basename(sys.argv[0])
    try:
        entry(argv)
    except Exception as exc:  # noqa: BLE001 - failure_exit_code sorts it; the rest is re-raised unchanged
        code = failure_exit_code(exc, prog=prog, user_errors=USER_ERRORS, debug="--debug" in argv)
        if code is None:
            raise
        return code
    return 0


def build_model(ctx: RunContext) -> nn.Module:
    """Build ``cfg.model`` on the run's device and log its parameter count (peft's format)."""
    model = build(ctx.cfg.model, DETECTORS).to(ctx.env.device)
    logger.info(format_parameter_count(model))
    logger.info(format_parameter_parts(model))
    ctx.metrics.write("params", **parameter_record(model))
    return model


def _check_batch_size(solver: Any, split: str, world_size: int) -> None:
    """``solver.{split}.batch_size`` is the global batch: a positive multiple of the number of processes."""
    batch = solver["batch_size"] if "batch_size" in solver else None
    if isinstance(batch, int) and not isinstance(batch, bool) and (batch <= 0 or batch % world_size):
        closest = world_size * max(1, round(batch / world_size))
        raise ConfigError(
            f"solver.{split}.batch_size = {batch} must be a positive multiple of the number of processes, "
            f"{world_size} (it is the global batch, split evenly across them); e.g. solver.{split}.batch_size={closest}"
        )


def build_loader(ctx: RunContext, split: str, *, shuffle: bool = False, drop_last: bool = False):
    """The loader of ``cfg.dataset[split]`` with ``cfg.solver[split]`` settings, sharded over ranks.

    Raises:
        ConfigError: ``solver.{split}.batch_size`` does not split evenly over the processes (names the key).
    """
    from opentad.datasets import build_dataloader, build_dataset

    _check_batch_size(ctx.cfg.solver[split], split, ctx.env.world_size)
    dataset = build_dataset(ctx.cfg.dataset[split])
    return build_dataloader(
        dataset,
        rank=ctx.env.rank,
        world_size=ctx.env.world_size,
        shuffle=shuffle,
        drop_last=drop_last,
        seed=ctx.seed,
        **ctx.cfg.solver[split],
    )


def section(cfg: Config, name: str, default: Optional[Any] = None) -> Any:
    """A top-level config section as a plain dict (``default`` when the config has none)."""
    if name not in cfg:
        return default
    return cfg[name].to_dict() if hasattr(cfg[name], "to_dict") else cfg[name]

