"""One training epoch and one validation-loss pass (upstream OpenTAD's ``train_one_epoch`` / ``val_one_epoch``).

Per iteration: forward under autocast (when AMP is on), the losses averaged
over ranks (for logs, and to stop every rank together on a non-finite loss),
backward (through a ``GradScaler`` for fp16), optional gradient clipping,
optimizer and scheduler steps, EMA update. The ``[Train]`` log line gives
the running means of the losses, the learning rates, the mean wall time of an
iteration (``time``) and of the part of it spent waiting for the loader
(``data``), both from the second iteration on (the first wait includes
starting the loader's workers), and on CUDA the peak memory.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any, Dict, Iterable, Mapping, Optional

import torch
import torch.nn as nn
import tqdm

from opentad.cores.distributed import reduce_mean
from opentad.cores.run_log import RunMetrics
from opentad.utils.ema import ModelEma
from opentad.utils.misc import AverageMeter, move_to_device

__all__ = [
    "NonFiniteLossError",
    "NonFiniteGradientError",
    "resolve_amp_dtype",
    "autocast",
    "train_one_epoch",
    "val_one_epoch",
]

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; training stops."""


class NonFiniteGradientError(FloatingPointError):
    """A gradient became NaN or infinite (without a ``GradScaler`` to skip the step); training stops."""


def resolve_amp_dtype(amp: Any, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for ``solver.amp`` on ``device``: None (fp32), float16 or bfloat16.

    ``True`` and ``"fp16"`` mean float16 (upstream), ``"bf16"`` bfloat16. On a
    CPU, training stays in fp32 whatever the setting.

    Raises:
        ValueError: an unknown value (the message lists the valid ones).
    """
    modes = {False: None, None: None, True: torch.float16, "fp16": torch.float16, "bf16": torch.bfloat16}
    if amp not in modes:
        raise ValueError(f"solver.amp={amp!r} is not one of [False, True, 'fp16', 'bf16']")
    dtype = modes[amp]
    if dtype is not None and device.type != "cuda":
        logger.info("solver.amp=%r ignored on %s: training in fp32.", amp, device.type)
        return None
    return dtype


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """Autocast context for ``dtype`` on ``device`` (a no-op context when ``dtype`` is None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _sample_names(metas: Any) -> list:
    """``video_name`` of each sample (with the window's first frame for sliding windows), ``?`` when absent."""
    names = []
    for meta in metas if isinstance(metas, (list, tuple)) else []:
        name = str(meta.get("video_name", "?")) if isinstance(meta, Mapping) else "?"
        if isinstance(meta, Mapping) and "window_start_frame" in meta:
            name += f"@frame{meta['window_start_frame']}"
        names.append(name)
    return names


def _suspects(batch: Mapping[str, Any], names: list) -> str:
    """The samples of ``batch`` whose inputs hold NaN/inf or whose ground truth is non-finite or has end < start."""
    def name(i: int) -> str:
        return names[i] if i < len(names) else f"#{i}"

    found = []
    inputs = batch.get("inputs")
    if torch.is_tensor(inputs) and inputs.is_floating_point() and inputs.dim() > 0:
        bad = (~torch.isfinite(inputs.flatten(1) if inputs.dim() > 1 else inputs[:, None])).any(dim=1)
        found += [f"inputs of {name(i)} hold NaN or inf" for i in bad.nonzero().flatten().tolist()]
    for i, segments in enumerate(batch.get("gt_segments") or []):
        if torch.is_tensor(segments) and segments.dim() == 2 and segments.shape[1] == 2:  # [K, 2]
            segments = segments.float()
            if not bool(torch.isfinite(segments).all()) or bool((segments[:, 1] < segments[:, 0]).any()):
                found.append(f"ground truth of {name(i)} is non-finite or has end < start")
    return "; ".join(found)


def _check_finite(losses: Mapping[str, float], epoch: int, it: int, num_iters: int,
                  batch: Optional[Mapping[str, Any]] = None, local: Optional[Mapping[str, Any]] = None) -> None:
    """Raise :class:`NonFiniteLossError` naming the iteration, the loss terms and this process's samples.

    Args:
        losses: the loss terms averaged over processes.
        batch: this process's batch (``metas`` name its samples; inputs and ground truth are checked).
        local: this process's own loss tensors (when all finite, another process's batch is at fault).
    """
    if all(math.isfinite(v) for v in losses.values()):
        return
    local_finite = local is not None and all(bool(torch.isfinite(v.detach()).all()) for v in local.values())
    terms = ", ".join(f"{k}={v:.6g}" for k, v in losses.items())
    names = _sample_names((batch or {}).get("metas"))
    origin = " (its own loss is finite: another process's batch gave the non-finite value)" if local_finite else ""
    suspects = _suspects(batch or {}, names)
    raise NonFiniteLossError(
        f"Non-finite loss at epoch {epoch}, iteration {it}/{num_iters}: {terms}. "
        f"Samples of this process's batch: {names}{origin}." + (f" Suspect: {suspects}." if suspects else "") +
        " Lower the learning rate, enable solver.clip_grad_norm, or check the inputs of this batch."
    )


def _non_finite_gradients(model: nn.Module, limit: int = 5) -> str:
    """Names (and counts) of up to ``limit`` parameters whose gradient holds NaN or inf."""
    bad = [(name, int((~torch.isfinite(p.grad)).sum()), p.grad.numel())
           for name, p in model.named_parameters() if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
    names = ", ".join(f"{name} ({count}/{numel} values)" for name, count, numel in bad[:limit])
    return f"{len(bad)} parameter(s): {names}" + (", ..." if len(bad) > limit else "")


def _backward_step(cost, model, optimizer, scaler, clip_grad_norm: float) -> Optional[float]:
    """Backward, optional clipping, optimizer step; returns the gradient norm when clipping.

    Raises:
        NonFiniteGradientError: with clipping on and no ``GradScaler`` (fp32, bf16), the gradient
            norm is NaN or inf: clipping would spread it to every weight, so the step is not taken and
            the message names the parameters at fault. (A ``GradScaler`` skips such steps itself.)
    """
    grad_norm = None
    if scaler is not None:
        scaler.scale(cost).backward()
        if clip_grad_norm > 0:
            scaler.unscale_(optimizer)
    else:
        cost.backward()
    if clip_grad_norm > 0:
        params = [p for p in model.parameters() if p.grad is not None]
        try:  # without a scaler, a non-finite norm raises before clipping touches the gradients
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip_grad_norm, error_if_nonfinite=scaler is None))
        except RuntimeError as err:
            if "non-finite" not in str(err):
                raise
            raise NonFiniteGradientError(
                f"Non-finite gradient norm with a finite loss ({float(cost.detach()):.6g}); the step was not taken. "
                f"Non-finite gradients in {_non_finite_gradients(model)}."
            ) from None
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return grad_norm


def _log_line(tag: str, meters: Mapping[str, AverageMeter], extra: Iterable[str] = ()) -> str:
    parts = [tag, f"Loss={meters['cost'].avg:.4f}" if "cost" in meters else ""]
    parts += [f"{k}={m.avg:.4f}" for k, m in meters.items() if k != "cost"]
    return "  ".join(p for p in list(parts) + list(extra) if p)


def train_one_epoch(
    loader,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    *,
    epoch: int,
    device: torch.device,
    model_ema: Optional[ModelEma] = None,
    clip_grad_norm: float = -1.0,
    logging_interval: int = 200,
    amp_dtype: Optional[torch.dtype] = None,
    scaler: Optional[torch.amp.GradScaler] = None,
    metrics: Optional[RunMetrics] = None,
    show_progress: bool = True,
    backbone_lr: bool = False,
) -> Dict[str, float]:
    """Train ``model`` for one pass over ``loader``.

    Args:
        loader: batches as ``collate`` makes them (docs/architecture.md).
        model: the detector (DDP-wrapped or not); returns a loss dict with ``cost``.
        optimizer, scheduler: stepped every iteration.
        epoch: the epoch index (logs, messages).
        device: where batches go.
        model_ema: updated after every step.
        clip_grad_norm: max gradient L2 norm; <= 0 disables clipping.
        logging_interval: log the running means every this many iterations (and at the end).
        amp_dtype: autocast dtype, or None for fp32.
        scaler: a ``GradScaler`` (fp16 only).
        metrics: gets a ``train`` record per iteration (loss terms, lr per group, grad_norm, step_s, data_s).
        show_progress: draw a tqdm bar with ETA.
        backbone_lr: the first parameter group is the backbone's (log its lr too).

    Returns:
        The epoch's mean of each loss term (averaged over ranks).

    Raises:
        NonFiniteLossError: a loss is NaN or infinite (every rank raises at the same iteration); the
            message names the samples of the rank's batch and those whose inputs or ground truth are
            not finite.
    """
    model.train()
    meters: Dict[str, AverageMeter] = {}
    step_time, data_time = AverageMeter(), AverageMeter()
    num_iters = len(loader)
    bar = tqdm.tqdm(loader, total=num_iters, desc=f"train {epoch}", disable=not show_progress, dynamic_ncols=True)
    end = time.perf_counter()
    for it, batch in enumerate(bar):
        waited = time.perf_counter() - end
        batch = move_to_device(batch, device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp_dtype):
            losses = model(**batch, return_loss=True)
        tensors = {k: v for k, v in losses.items() if torch.is_tensor(v)}
        values = reduce_mean(tensors)
        _check_finite(values, epoch, it, num_iters, batch, tensors)
        grad_norm = _backward_step(losses["cost"], model, optimizer, scaler, clip_grad_norm)
        lrs = [group["lr"] for group in optimizer.param_groups]
        scheduler.step()
        if model_ema is not None:
            model_ema.update(model)
        for key, value in values.items():
            meters.setdefault(key, AverageMeter()).update(value)
        if it > 0 or num_iters == 1:  # the first wait includes starting the loader's workers
            data_time.update(waited)
            step_time.update(time.perf_counter() - end)
        bar.set_postfix(loss=f"{meters['cost'].avg:.4f}", lr=f"{lrs[-1]:.2e}", refresh=False)
        if metrics is not None:
            clipped = {} if grad_norm is None else dict(grad_norm=grad_norm)
            metrics.write("train", step=epoch * num_iters + it, epoch=epoch, iter=it, **values, lr=lrs, **clipped,
                          step_s=time.perf_counter() - end, data_s=waited)
        if (it != 0 and it % logging_interval == 0) or it + 1 == num_iters:
            lr_text = [f"lr_backbone={lrs[0]:.1e}"] if backbone_lr else []
            lr_text.append(f"lr_det={lrs[-1]:.1e}")
            lr_text.append(f"time={step_time.avg:.3f}s  data={data_time.avg:.3f}s")
            if device.type == "cuda":
                lr_text.append(f"mem={torch.cuda.max_memory_allocated(device) / 2**20:.0f}MB")
            logger.info(_log_line(f"[Train]: [{epoch:03d}][{it:05d}/{num_iters - 1:05d}]", meters, lr_text))
        end = time.perf_counter()  # logging and bookkeeping count in neither mean
    bar.close()
    return {k: m.avg for k, m in meters.items()}


@torch.no_grad()
def val_one_epoch(
    loader,
    model: nn.Module,
    *,
    epoch: int,
    device: torch.device,
    amp_dtype: Optional[torch.dtype] = None,
    show_progress: bool = True,
) -> float:
    """Mean validation loss (``cost``) of ``model`` over ``loader`` (in eval mode, no gradients).

    Pass the EMA module as ``model`` to validate the averaged weights.

    Returns:
        The mean ``cost`` over batches and ranks.
    """
    was_training = model.training
    model.eval()
    meters: Dict[str, AverageMeter] = {}
    for batch in tqdm.tqdm(loader, desc=f"val {epoch}", disable=not show_progress, dynamic_ncols=True):
        batch = move_to_device(batch, device)
        with autocast(device, amp_dtype):
            losses = model(**batch, return_loss=True)
        for key, value in reduce_mean({k: v for k, v in losses.items() if torch.is_tensor(v)}).items():
            meters.setdefault(key, AverageMeter()).update(value)
    model.train(was_training)
    logger.info(_log_line(f"[Val]: [{epoch:03d}]", meters))
    return meters["cost"].avg if "cost" in meters else float("nan")
