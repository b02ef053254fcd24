"""Building datasets from configs, batching samples, and distributed data loaders."""
from __future__ import annotations

from collections.abc import Sequence as SequenceABC
from typing import Any, Dict, Mapping, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.dataloader import default_collate
from torch.utils.data.distributed import DistributedSampler

from opentad.registry import DATASETS, build

__all__ = ["build_dataset", "build_dataloader", "collate", "STACKED_KEYS"]

#: keys that ``collate`` stacks into one tensor; every other key becomes a list.
STACKED_KEYS = ("inputs", "masks")


def build_dataset(cfg: Mapping[str, Any], **default_args: Any) -> Dataset:
    """Build a dataset from its config (``type`` from :data:`opentad.registry.DATASETS`).

    Args:
        cfg: the dataset config, e.g. ``cfg.dataset.train``; it is not modified.
        **default_args: values for keys the config leaves out.

    Raises:
        ConfigError: unknown type or keys (see :func:`opentad.registry.build`).
    """
    return build(cfg, DATASETS, **default_args)


def collate(batch: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Batch samples: ``inputs`` and ``masks`` are stacked to ``[B, ...]``, every other key is a list of length B.

    Args:
        batch: samples as returned by ``Collect`` (docs/architecture.md).

    Raises:
        TypeError: ``batch`` is not a non-empty sequence of dicts.
        ValueError: samples have different keys, or tensors to stack have
            different shapes (the message gives the shapes).
    """
    if not isinstance(batch, SequenceABC) or not batch or not all(isinstance(s, Mapping) for s in batch):
        raise TypeError(f"collate expects a non-empty sequence of dicts, got {type(batch).__name__}")
    keys = list(batch[0])
    for i, sample in enumerate(batch[1:], start=1):
        if set(sample) != set(keys):
            raise ValueError(f"collate: sample {i} has keys {sorted(sample)}, sample 0 has {sorted(keys)}")
    data: Dict[str, Any] = {}
    for key in keys:
        values = [sample[key] for sample in batch]
        if key in STACKED_KEYS:
            shapes = {tuple(v.shape) for v in values if isinstance(v, torch.Tensor)}
            if len(shapes) > 1:
                raise ValueError(
                    f"collate: cannot stack {key!r} of shapes {sorted(shapes)}; pad or crop to one length in the "
                    "pipeline, or use batch_size=1"
                )
            data[key] = default_collate(values)
        else:
            data[key] = values
    return data


def build_dataloader(
    dataset: Dataset,
    *,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    shuffle: bool = False,
    drop_last: bool = False,
    num_workers: int = 0,
    pin_memory: Optional[bool] = None,
    persistent_workers: bool = False,
    seed: int = 0,
) -> DataLoader:
    """A data loader over this rank's share of ``dataset`` (``DistributedSampler``, as upstream).

    ``batch_size`` is the global batch: each of the ``world_size`` processes
    loads ``batch_size // world_size`` samples per step. As upstream,
    ``shuffle`` and ``drop_last`` go to the sampler (``drop_last`` drops the
    tail that would not split evenly across ranks; a last, smaller batch on a
    rank is still returned). With ``shuffle``, call
    ``loader.sampler.set_epoch(epoch)`` each epoch for a new order.

    Args:
        dataset: the dataset.
        batch_size: global batch size, a multiple of ``world_size``.
        rank: this process's rank.
        world_size: number of processes.
        shuffle: shuffle the order (seeded by ``seed`` and the epoch).
        drop_last: see above.
        num_workers: loader worker processes.
        pin_memory: pin host memory; None means "if CUDA is available".
        persistent_workers: keep workers alive between epochs (only with workers).
        seed: sampler seed, the same on every rank.

    Raises:
        ValueError: ``batch_size`` is not a positive multiple of ``world_size``
            (the message names both), or ``rank`` is not in ``[0, world_size)``.
    """
    if batch_size <= 0 or world_size <= 0 or batch_size % world_size != 0:
        raise ValueError(
            f"batch_size {batch_size} must be a positive multiple of world_size {world_size} "
            "(it is the global batch, split evenly across processes)"
        )
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    sampler = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, drop_last=drop_last, seed=seed
    )
    return DataLoader(
        dataset,
        batch_size=batch_size // world_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
    )
