"""The training run's :class:`Trainer`: epochs, validation, evaluation, checkpoints and resume.

Checkpoints go to ``<work_dir>/checkpoint/``: ``epoch_{e}.pth`` every
``workflow.checkpoint_interval`` epochs and at the last epoch, ``last.pth``
after every epoch (both hold the full training state for ``--resume``), and
``best.pth`` (weights only) at the lowest validation loss. After each epoch
the log gets a ``[Throughput]`` line (samples/s, peak GPU memory per rank)
and, under DDP or with quantized layers, a ``[Consistency]`` line (ranks
agree, quantized bytes unchanged; :mod:`opentad.cores.consistency`); the same
figures, the iterations' losses and the evaluations go to ``metrics.jsonl``
and TensorBoard (:mod:`opentad.cores.run_log`).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, Optional

import torch
from torch.nn.parallel import DistributedDataParallel

from opentad.cores.consistency import ConsistencyChecker
from opentad.cores.launch import RunContext, build_loader, build_model, section
from opentad.cores.optimizer import build_optimizer
from opentad.cores.run_log import log_throughput
from opentad.cores.scheduler import build_scheduler
from opentad.cores.test_engine import eval_one_epoch
from opentad.cores.train_engine import resolve_amp_dtype, train_one_epoch, val_one_epoch
from opentad.cores.work_dir import warn_world_size_change
from opentad.evaluations import check_ground_truth
from opentad.models.utils.qlora import has_quantized_layers
from opentad.utils.checkpoint import (
    CheckpointError,
    atomic_link,
    atomic_save,
    load_model_state_from,
    load_weights,
    model_state_dict,
    read_checkpoint,
)
from opentad.utils.ema import ModelEma
from opentad.utils.misc import (
    get_rng_state,
    load_module_random_states,
    module_random_states,
    preserved_rng_state,
    set_rng_state,
    unwrap_model,
)

__all__ = ["Trainer", "RESUME_KEYS"]

logger = logging.getLogger(__name__)

#: what ``--resume`` needs; a file without them (``best.pth``, a merged or upstream weights file) is for ``--load-from``
RESUME_KEYS = ("epoch", "state_dict", "optimizer", "scheduler")


class Trainer:
    """Builds everything a training run needs from a :class:`RunContext` and runs the epochs.

    Args:
        ctx: the prepared run.
        not_eval: run inference at the evaluation interval but do not evaluate.
    """

    def __init__(self, ctx: RunContext, *, not_eval: bool = False) -> None:
        self.ctx, self.cfg, self.env, self.not_eval = ctx, ctx.cfg, ctx.env, not_eval
        self.solver = section(self.cfg, "solver", {})
        self.workflow = section(self.cfg, "workflow", {})
        self.train_loader = build_loader(ctx, "train", shuffle=True, drop_last=True)
        self.val_loader = build_loader(ctx, "val") if self._interval("val_loss_interval") > 0 else None
        self.test_loader = build_loader(ctx, "test") if self._interval("val_eval_interval") > 0 else None
        if self.test_loader is not None and not not_eval:  # a bad evaluation file fails now, not after an epoch
            check_ground_truth(section(self.cfg, "evaluation"), class_map=self.test_loader.dataset.class_map)
        self.model = self._wrap(build_model(ctx))
        checked = self.env.world_size > 1 or has_quantized_layers(self.model)
        self.metrics = ctx.metrics
        self.consistency = ConsistencyChecker(self.model, metrics=self.metrics) if checked else None
        self.model_ema = ModelEma(self.model) if self._flag("ema") else None
        self.amp_dtype = resolve_amp_dtype(self.solver["amp"] if "amp" in self.solver else False, self.env.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.optimizer = build_optimizer(section(self.cfg, "optimizer"), self.model)
        self.scheduler, max_epoch = build_scheduler(
            section(self.cfg, "scheduler"), self.optimizer, len(self.train_loader)
        )
        self.end_epoch = int(self.workflow["end_epoch"]) if "end_epoch" in self.workflow else max_epoch
        self.start_epoch, self.best_val_loss = 0, float("inf")
        self.metrics.tensorboard = self._tensorboard()
        self.ckpt_dir = os.path.join(ctx.work_dir, "checkpoint")

    def _flag(self, key: str) -> bool:
        return bool(self.solver[key]) if key in self.solver else False

    def _interval(self, key: str) -> int:
        return int(self.workflow[key]) if key in self.workflow else -1

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.env.distributed:
            return model
        static = self._flag("static_graph")
        cuda = self.env.device.type == "cuda"
        ddp = DistributedDataParallel(
            model, device_ids=[self.env.local_rank] if cuda else None,
            find_unused_parameters=not static, static_graph=static,
        )
        if self._flag("fp16_compress"):
            from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

            ddp.register_comm_hook(state=None, hook=default_hooks.fp16_compress_hook)
            logger.info("DDP gradients are all-reduced in fp16.")
        logger.info("DDP over %d processes (static_graph=%s).", self.env.world_size, static)
        return ddp

    def _tensorboard(self):
        if not self.env.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=os.path.join(self.ctx.work_dir, "tensorboard"))

    # ----------------------------------------------------------- checkpoints
    def state(self, epoch: int) -> Dict[str, Any]:
        """The full training state after ``epoch`` (tensors and plain values only)."""
        state = {
            "epoch": epoch,
            "state_dict": model_state_dict(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": dict(get_rng_state(), modules=module_random_states(self.model)),
            "meta": {"best_val_loss": self.best_val_loss, "seed": self.ctx.seed, "world_size": self.env.world_size},
        }
        if self.model_ema is not None:
            state["state_dict_ema"] = model_state_dict(self.model_ema.module)
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def save(self, epoch: int) -> None:
        """Write ``last.pth`` (and ``epoch_{epoch}.pth`` at the interval / last epoch) on rank 0."""
        if not self.env.is_main:
            return
        last = os.path.join(self.ckpt_dir, "last.pth")
        atomic_save(self.state(epoch), last)
        interval = self._interval("checkpoint_interval")
        if epoch == self.end_epoch - 1 or (interval > 0 and (epoch + 1) % interval == 0):
            atomic_link(last, os.path.join(self.ckpt_dir, f"epoch_{epoch}.pth"))
            logger.info("Saved checkpoint/epoch_%d.pth", epoch)

    def save_best(self, epoch: int) -> None:
        if not self.env.is_main:
            return
        best = {"epoch": epoch, "state_dict": model_state_dict(self.model)}
        if self.model_ema is not None:
            best["state_dict_ema"] = model_state_dict(self.model_ema.module)
        atomic_save(best, os.path.join(self.ckpt_dir, "best.pth"))

    def resume(self, path: str) -> None:
        """Restore the full state written by :meth:`save`; training continues at the next epoch.

        Raises:
            CheckpointError: ``path`` holds weights only (no optimizer, scheduler or
                epoch): the message says to use ``--load-from`` instead.
        """
        ckpt = read_checkpoint(path, map_location=self.env.device, what="--resume checkpoint")
        lacking = [k for k in RESUME_KEYS if k not in ckpt]
        if lacking:
            raise CheckpointError(
                f"--resume {path}: the file holds no training state ({', '.join(lacking)} missing; it has "
                f"{sorted(ckpt)}), so the run cannot continue from it; to start a new run from its weights "
                f"use --load-from {path} (or load_from='{path}' in the config)"
            )
        warn_world_size_change(ckpt.get("meta"), world_size=self.env.world_size,
                               batch_size=int(self.solver["train"]["batch_size"]), path=path)
        load_model_state_from(self.model, ckpt["state_dict"], strict=True, path=path, what="--resume")
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.model_ema is not None:
            load_model_state_from(self.model_ema.module, ckpt["state_dict_ema"], strict=True, path=path,
                                  what="--resume (EMA weights)")
        if self.scaler is not None and "scaler" in ckpt:
            self.scaler.load_state_dict(ckpt["scaler"])
        if "rng" in ckpt:
            set_rng_state(ckpt["rng"])
            if "modules" in ckpt["rng"]:  # e.g. the GPU augmentation's draw count
                load_module_random_states(self.model, ckpt["rng"]["modules"])
        self.best_val_loss = float(ckpt["meta"]["best_val_loss"]) if "meta" in ckpt else float("inf")
        self.start_epoch = int(ckpt["epoch"]) + 1
        logger.info("Resumed from %s: continuing at epoch %d.", path, self.start_epoch)
        if self.consistency is not None:
            self.consistency.rebase(self.model, epoch=int(ckpt["epoch"]))

    def load_from(self, path: str) -> None:
        """Initialise the weights from a checkpoint's weights only (``--load-from`` / ``load_from=``).

        Any layout :func:`~opentad.utils.checkpoint.load_weights` accepts; the EMA
        weights of the file when ``solver.ema`` is set (as ``tools/test.py`` picks).
        Missing, unexpected and shape-mismatched keys are logged; optimizer,
        scheduler and epoch start fresh, and the EMA starts from the loaded weights.
        """
        load_weights(self.model, path, use_ema=self.model_ema is not None, map_location=self.env.device)
        if self.model_ema is not None:
            self.model_ema.set(self.model)
        if self.consistency is not None:
            self.consistency.rebase(self.model, epoch=-1)

    # ----------------------------------------------------------------- loop
    def _due(self, key: str, epoch: int) -> bool:
        interval = self._interval(key)
        start = int(self.workflow["val_start_epoch"]) if "val_start_epoch" in self.workflow else 0
        return epoch >= start and interval > 0 and (epoch + 1) % interval == 0

    def _eval_model(self) -> torch.nn.Module:
        return self.model_ema.module if self.model_ema is not None else self.model

    def validate(self, epoch: int) -> None:
        """Validation loss (EMA weights when enabled); keeps ``best.pth`` at the lowest."""
        loss = val_one_epoch(self.val_loader, self._eval_model(), epoch=epoch, device=self.env.device,
                             amp_dtype=self.amp_dtype, show_progress=self.env.is_main)
        self.metrics.write("val", step=epoch, epoch=epoch, loss=loss)
        if loss < self.best_val_loss:
            self.best_val_loss = loss
            logger.info("New best epoch %d (val loss %.4f)", epoch, loss)
            self.save_best(epoch)

    def evaluate(self, epoch: int) -> Optional[Dict[str, Any]]:
        """Inference on the test split and evaluation (rank 0 gets the metrics)."""
        metrics = eval_one_epoch(
            self.test_loader, self._eval_model(), device=self.env.device,
            inference_cfg=section(self.cfg, "inference", {}), post_cfg=section(self.cfg, "post_processing", {}),
            evaluation_cfg=section(self.cfg, "evaluation"), work_dir=self.ctx.work_dir, rank=self.env.rank,
            amp_dtype=self.amp_dtype, not_eval=self.not_eval, epoch=epoch,
        )
        if metrics is not None:  # the JSON record: eval_one_epoch
            self.metrics.scalars("eval", metrics, epoch)
        return metrics

    def run_epoch(self, epoch: int) -> Optional[Dict[str, Any]]:
        """Train one epoch, save, then validate / evaluate when due (without touching the training RNG)."""
        sampler = self.train_loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        clip = float(self.solver["clip_grad_norm"]) if "clip_grad_norm" in self.solver else -1.0
        began = time.perf_counter()
        losses = train_one_epoch(
            self.train_loader, self.model, self.optimizer, self.scheduler, epoch=epoch, device=self.env.device,
            model_ema=self.model_ema, clip_grad_norm=clip,
            logging_interval=int(self.workflow["logging_interval"]) if "logging_interval" in self.workflow else 200,
            amp_dtype=self.amp_dtype, scaler=self.scaler, metrics=self.metrics, show_progress=self.env.is_main,
            backbone_lr=self._has_backbone_groups(),
        )
        log_throughput(
            epoch=epoch, iters=len(self.train_loader), samples=len(sampler) * self.env.world_size,
            seconds=time.perf_counter() - began, device=self.env.device, world_size=self.env.world_size,
            loss=losses["cost"] if "cost" in losses else None, metrics=self.metrics,
        )
        if self.consistency is not None:
            self.consistency.check(self.model, epoch=epoch)
        self.save(epoch)
        metrics = None
        with preserved_rng_state():
            if self.val_loader is not None and self._due("val_loss_interval", epoch):
                self.validate(epoch)
            if self.test_loader is not None and self._due("val_eval_interval", epoch):
                metrics = self.evaluate(epoch)
        return metrics

    def _has_backbone_groups(self) -> bool:
        backbone = getattr(unwrap_model(self.model), "backbone", None)
        return backbone is not None and any(p.requires_grad for p in backbone.parameters())

    def fit(self) -> Optional[Dict[str, Any]]:
        """Run epochs ``start_epoch .. end_epoch - 1``; returns the last metrics (rank 0)."""
        logger.info("Training epochs %d..%d", self.start_epoch, self.end_epoch - 1)
        metrics = None
        for epoch in range(self.start_epoch, self.end_epoch):
            metrics = self.run_epoch(epoch) or metrics
        self.metrics.close()
        logger.info("Training over.")
        return metrics
