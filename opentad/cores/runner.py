"""The training run and the test run: what ``tools/train.py`` and ``tools/test.py`` call.

``train(argv)`` parses the arguments, prepares the run and hands it to
:class:`~opentad.cores.trainer.Trainer` (epochs, validation, checkpoints,
``--resume``); ``test(argv)`` loads a checkpoint and evaluates it on the test split.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional, Sequence

import torch

from opentad.cores.distributed import cleanup_distributed
from opentad.cores.entry import reported_failures
from opentad.cores.launch import (
    USER_ERRORS,
    build_loader,
    build_model,
    prepare_run,
    section,
    test_parser,
    train_parser,
)
from opentad.cores.test_engine import eval_one_epoch
from opentad.cores.train_engine import resolve_amp_dtype
from opentad.cores.trainer import Trainer
from opentad.cores.work_dir import (
    add_work_dir_arguments,
    guard_work_dir,
    launch_rank_and_size,
    run_dir_of,
    tidy_work_dir,
)
from opentad.evaluations import check_ground_truth
from opentad.utils.checkpoint import load_checkpoint
from opentad.utils.process import cpu_description

__all__ = ["train", "test", "default_test_checkpoint"]

logger = logging.getLogger(__name__)


def train(argv: Optional[Sequence[str]] = None) -> Optional[Dict[str, Any]]:
    """``tools/train.py``: parse arguments, prepare the run, (resume,) train."""
    args = add_work_dir_arguments(train_parser()).parse_args(argv)
    moved = guard_work_dir(run_dir_of(args), resume=args.resume, move_old=args.move_old_run,
                           is_main=launch_rank_and_size()[0] == 0)  # before anything is written there
    ctx = prepare_run(args, mode="train")
    tidy_work_dir(ctx.work_dir, moved=moved, is_main=ctx.env.is_main)
    logger.info("CPU threads per process: %d (OMP_NUM_THREADS=%s); CPU: %s", torch.get_num_threads(),
                os.environ.get("OMP_NUM_THREADS", "unset"), cpu_description())
    # reported once (bad input at set-up: one line from rank 0; see opentad/cores/entry.py), then raised
    with reported_failures(rank=ctx.env.rank, world_size=ctx.env.world_size, what="Training",
                           user_errors=USER_ERRORS) as stage:
        trainer = Trainer(ctx, not_eval=args.not_eval)
        _start(trainer, resume=args.resume, load_from=args.load_from or ctx.cfg.get("load_from"))
        stage.running()
        metrics = trainer.fit()
    # only after success: tearing NCCL down while other ranks wait in a collective would hang this one
    cleanup_distributed()
    return metrics


def _start(trainer: Trainer, *, resume: Optional[str], load_from: Optional[str]) -> None:
    """``--resume`` (the full state) or else ``--load-from`` / ``load_from`` (weights only)."""
    if resume is not None:
        if load_from:
            logger.info("load_from=%s is not used: --resume restores the run's own weights", load_from)
        trainer.resume(resume)
    elif load_from:
        trainer.load_from(load_from)


def default_test_checkpoint(work_dir: str, inference: Dict[str, Any]) -> str:
    """The checkpoint to test: under ``work_dir/checkpoint``, ``epoch_{inference.test_epoch}.pth`` if set,
    else ``best.pth``, else ``last.pth``."""
    folder = os.path.join(work_dir, "checkpoint")
    if "test_epoch" in inference:
        return os.path.join(folder, f"epoch_{inference['test_epoch']}.pth")
    best = os.path.join(folder, "best.pth")
    return best if os.path.isfile(best) else os.path.join(folder, "last.pth")


def test(argv: Optional[Sequence[str]] = None) -> Optional[Dict[str, Any]]:
    """``tools/test.py``: load a checkpoint (EMA weights when ``solver.ema``) and evaluate on the test split."""
    args = test_parser().parse_args(argv)
    ctx = prepare_run(args, mode="test")
    cfg, env = ctx.cfg, ctx.env
    with reported_failures(rank=env.rank, world_size=env.world_size, what="Testing", user_errors=USER_ERRORS) as stage:
        loader = build_loader(ctx, "test")
        if not args.not_eval:  # before inference
            check_ground_truth(section(cfg, "evaluation"), class_map=loader.dataset.class_map)
        model = build_model(ctx)
        inference, solver = section(cfg, "inference", {}), section(cfg, "solver", {})
        if inference.get("load_from_raw_predictions", False):
            logger.info("Post-processing saved raw predictions; no checkpoint is loaded.")
        else:
            path = args.checkpoint or default_test_checkpoint(ctx.work_dir, inference)
            what = "--checkpoint" if args.checkpoint else "checkpoint (the work dir's default)"
            load_checkpoint(model, path, use_ema=bool(solver.get("ema", False)), map_location=env.device, what=what)
        stage.running()
        metrics = eval_one_epoch(
            loader, model, device=env.device, inference_cfg=inference,
            post_cfg=section(cfg, "post_processing", {}), evaluation_cfg=section(cfg, "evaluation"),
            work_dir=ctx.work_dir, rank=env.rank, amp_dtype=resolve_amp_dtype(solver.get("amp", False), env.device),
            not_eval=args.not_eval,
        )
    cleanup_distributed()
    return metrics
