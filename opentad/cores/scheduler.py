"""Learning-rate schedules stepped once per iteration, configured in epochs (upstream OpenTAD).

``scheduler = dict(type="LinearWarmupCosineAnnealingLR", warmup_epoch=5, max_epoch=35)``
is built with :func:`build_scheduler` (or ``build(cfg, SCHEDULERS, optimizer=...,
iters_per_epoch=...)``): epochs are multiplied by the number of iterations per
epoch, and the training loop calls ``scheduler.step()`` after every optimizer step.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch
from torch.optim.lr_scheduler import LRScheduler

from opentad.cores.sections import check_section
from opentad.registry import CONFIG_SECTIONS, SCHEDULERS, ConfigError, build

__all__ = ["LinearWarmupCosineAnnealingLR", "LinearWarmupMultiStepLR", "build_scheduler"]


def _warmup_lr(step: int, warmup: int, start_lr: float, base_lr: float) -> float:
    """Linear from ``start_lr`` at step 0 to ``base_lr`` at step ``warmup - 1`` (upstream's slope)."""
    if warmup <= 1:
        return start_lr
    return start_lr + step * (base_lr - start_lr) / (warmup - 1)


@SCHEDULERS.register_module()
class LinearWarmupCosineAnnealingLR(LRScheduler):
    """Linear warm-up, then cosine annealing from each group's lr to ``eta_min``.

    For iteration ``t`` (``W`` warm-up and ``M`` total iterations, base lr ``b``):
    ``t < W``: ``warmup_start_lr + t * (b - warmup_start_lr) / (W - 1)`` (only
    ``warmup_start_lr`` at ``t = 0`` when ``W = 1``); ``t >= W``:
    ``eta_min + (b - eta_min) * (1 + cos(pi * (t - W) / (M - W))) / 2``. These are
    the values of upstream's recursive form, computed in closed form.

    Args:
        optimizer: the optimizer.
        warmup_iters: warm-up iterations ``W`` (0 starts the cosine at once).
        max_iters: total iterations ``M`` (``> W``).
        warmup_start_lr: lr at iteration 0.
        eta_min: final lr.
        last_epoch: index of the last step taken (-1: fresh start).

    Raises:
        ValueError: ``max_iters <= warmup_iters`` or a negative count.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        warmup_iters: int,
        max_iters: int,
        warmup_start_lr: float = 0.0,
        eta_min: float = 1e-8,
        last_epoch: int = -1,
    ) -> None:
        if warmup_iters < 0 or max_iters <= warmup_iters:
            raise ValueError(
                f"LinearWarmupCosineAnnealingLR: need 0 <= warmup ({warmup_iters}) < max ({max_iters}) iterations"
            )
        self.warmup_iters = int(warmup_iters)
        self.max_iters = int(max_iters)
        self.warmup_start_lr = float(warmup_start_lr)
        self.eta_min = float(eta_min)
        super().__init__(optimizer, last_epoch)

    @classmethod
    def from_config(
        cls,
        *,
        optimizer: torch.optim.Optimizer,
        iters_per_epoch: int,
        warmup_epoch: float,
        max_epoch: int,
        warmup_start_lr: float = 0.0,
        eta_min: float = 1e-8,
    ) -> Dict[str, Any]:
        """Config keys (in epochs) to constructor arguments (in iterations)."""
        return dict(
            optimizer=optimizer,
            warmup_iters=int(round(warmup_epoch * iters_per_epoch)),
            max_iters=int(max_epoch * iters_per_epoch),
            warmup_start_lr=warmup_start_lr,
            eta_min=eta_min,
        )

    def lr_at(self, step: int, base_lr: float) -> float:
        """The learning rate of a group with base lr ``base_lr`` at iteration ``step``."""
        if step < self.warmup_iters:
            return _warmup_lr(step, self.warmup_iters, self.warmup_start_lr, base_lr)
        progress = (step - self.warmup_iters) / (self.max_iters - self.warmup_iters)
        return self.eta_min + 0.5 * (base_lr - self.eta_min) * (1.0 + math.cos(math.pi * progress))

    def get_lr(self) -> List[float]:
        return [self.lr_at(self.last_epoch, base_lr) for base_lr in self.base_lrs]


@SCHEDULERS.register_module(name=["LinearWarmupMultiStepLR", "MultiStepLR"])
class LinearWarmupMultiStepLR(LRScheduler):
    """Optional linear warm-up, then the lr times ``gamma`` at each milestone (upstream's ``MultiStepLR`` too).

    For iteration ``t``: ``t < W``: ``warmup_start_lr + t * (b - warmup_start_lr) / W``;
    otherwise ``b * gamma ** (number of milestones <= t)``.

    Args:
        optimizer: the optimizer.
        milestone_iters: iterations at which the lr is multiplied by ``gamma``.
        gamma: the factor.
        warmup_iters: warm-up iterations ``W`` (0: none).
        warmup_start_lr: lr at iteration 0 of the warm-up.
        last_epoch: index of the last step taken.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        milestone_iters: Sequence[int],
        gamma: float = 0.1,
        warmup_iters: int = 0,
        warmup_start_lr: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.milestone_iters = sorted(int(m) for m in milestone_iters)
        self.gamma = float(gamma)
        self.warmup_iters = int(warmup_iters)
        self.warmup_start_lr = float(warmup_start_lr)
        super().__init__(optimizer, last_epoch)

    @classmethod
    def from_config(
        cls,
        *,
        optimizer: torch.optim.Optimizer,
        iters_per_epoch: int,
        milestones: Sequence[int],
        max_epoch: int,
        gamma: float = 0.1,
        warmup_epoch: float = 0,
        warmup_start_lr: float = 0.0,
    ) -> Dict[str, Any]:
        """Config keys (in epochs) to constructor arguments (in iterations); ``max_epoch`` ends training."""
        return dict(
            optimizer=optimizer,
            milestone_iters=[int(m * iters_per_epoch) for m in milestones],
            gamma=gamma,
            warmup_iters=int(round(warmup_epoch * iters_per_epoch)),
            warmup_start_lr=warmup_start_lr,
        )

    def lr_at(self, step: int, base_lr: float) -> float:
        """The learning rate of a group with base lr ``base_lr`` at iteration ``step``."""
        if step < self.warmup_iters:
            return self.warmup_start_lr + step * (base_lr - self.warmup_start_lr) / self.warmup_iters
        return base_lr * self.gamma ** sum(1 for m in self.milestone_iters if m <= step)

    def get_lr(self) -> List[float]:
        return [self.lr_at(self.last_epoch, base_lr) for base_lr in self.base_lrs]


def build_scheduler(
    cfg: Mapping[str, Any], optimizer: torch.optim.Optimizer, iters_per_epoch: int
) -> Tuple[LRScheduler, int]:
    """Build the ``scheduler`` section for ``optimizer``.

    Args:
        cfg: the scheduler config (not modified), with ``max_epoch``.
        optimizer: the optimizer to drive.
        iters_per_epoch: training iterations per epoch (``len(train_loader)``).

    Returns:
        ``(scheduler, max_epoch)``.

    Raises:
        ConfigError: bad type or keys, or ``iters_per_epoch < 1``.
    """
    if iters_per_epoch < 1:
        raise ConfigError(f"the training loader is empty (iters_per_epoch={iters_per_epoch}); check dataset.train")
    errors = check_scheduler_section(cfg, "scheduler")
    if errors:
        raise ConfigError("; ".join(errors))
    scheduler = build(cfg, SCHEDULERS, optimizer=optimizer, iters_per_epoch=iters_per_epoch)
    return scheduler, int(cfg["max_epoch"])


@CONFIG_SECTIONS.register_module(name="scheduler")
def check_scheduler_section(value: Any, path: str) -> List[str]:
    """Problems in the ``scheduler`` section: unknown type, unknown or missing keys, keys the engine sets."""
    if not isinstance(value, Mapping) or "type" not in value:
        return [f"{path}: expected a dict with 'type' (one of {SCHEDULERS.names()})"]
    cls = SCHEDULERS.get(value["type"])
    if cls is None:
        return [f"{path}: unknown scheduler type {value['type']!r}; registered: {SCHEDULERS.names()}"]
    keys = {k: v for k, v in value.items() if k != "type"}
    return check_section(cls, keys, path, engine=("optimizer", "iters_per_epoch"), partial=False)
