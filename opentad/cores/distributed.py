"""Process-group set-up for torchrun launches, and the few collectives the engines use.

Without ``RANK`` / ``WORLD_SIZE`` in the environment (a plain ``python
tools/train.py``), no process group is created and every collective below is
the identity. Under ``torchrun`` the group uses NCCL on CUDA and Gloo on CPU.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping

import torch
import torch.distributed as dist

__all__ = [
    "DistEnv",
    "init_distributed",
    "cleanup_distributed",
    "is_distributed",
    "reduce_mean",
    "gather_objects",
    "barrier",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """Where this process runs.

    Attributes:
        rank: global rank.
        world_size: number of processes.
        local_rank: rank on this host (selects the GPU).
        device: the device models and batches go to.
        distributed: whether a process group was initialised.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    distributed: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from exc


def init_distributed(*, use_cuda: bool = True) -> DistEnv:
    """Join the torchrun process group if the environment describes one.

    Args:
        use_cuda: use CUDA (and NCCL) when available; False forces CPU and Gloo.

    Returns:
        This process's :class:`DistEnv`.
    """
    cuda = use_cuda and torch.cuda.is_available()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        device = torch.device("cuda", 0) if cuda else torch.device("cpu")
        return DistEnv(rank=0, world_size=1, local_rank=0, device=device, distributed=False)
    rank, world_size = _env_int("RANK"), _env_int("WORLD_SIZE")
    local_rank = _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else rank
    if cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        backend = "nccl" if cuda else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size)
        logger.info("Process group: backend %s, rank %d of %d (local rank %d).", backend, rank, world_size, local_rank)
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=device, distributed=True)


def cleanup_distributed() -> None:
    """Destroy the process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """Whether collectives span more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def reduce_mean(values: Mapping[str, torch.Tensor]) -> Dict[str, float]:
    """The mean over ranks of each scalar tensor (one all-reduce), as Python floats.

    Args:
        values: ``{name: scalar tensor}``; the same keys, in the same order, on every rank.
    """
    if not values:
        return {}
    stacked = torch.stack([v.detach().float().reshape(()) for v in values.values()])
    if is_distributed():
        dist.all_reduce(stacked)
        stacked /= dist.get_world_size()
    return dict(zip(values.keys(), stacked.cpu().tolist()))


def gather_objects(obj: Any) -> List[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without a process group."""
    if not is_distributed():
        return [obj]
    gathered: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if is_distributed():
        dist.barrier()
