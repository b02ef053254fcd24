"""Peak tensor memory of a piece of code on any device, the CPU included.

:class:`LiveTensorBytes` watches every ATen operator called inside it (a
``TorchDispatchMode``) and counts the storage of each tensor an operator
creates until the last Python tensor using that storage is gone. Its
``peak`` is the largest number of bytes alive at once: what a caching
allocator would have to hold for the operators' outputs. Storage that
existed before the context (inputs, weights) and views of it are not
counted; neither is scratch memory a kernel allocates internally. Used to
compare the memory of two implementations on the CPU (e.g. chunked and
whole-clip augmentation) when no GPU is at hand; the GPU's own figure is
``torch.cuda.max_memory_allocated``.

Example::

    with LiveTensorBytes() as meter:
        out = augment(frames)
    peak_mib = meter.peak / 2**20
"""
from __future__ import annotations

import weakref
from typing import Any, Dict, List, Set

from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["LiveTensorBytes"]


def _storage_key(tensor: Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


class LiveTensorBytes(TorchDispatchMode):
    """Context manager: ``peak`` (bytes) of tensor storage created inside it and alive at the same time.

    Attributes:
        live: bytes alive now (created inside the context, not yet freed).
        peak: the largest ``live`` seen.
        allocated: bytes of all storage created inside the context, freed or not.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self.allocated = 0
        self._storages: Dict[int, List[int]] = {}  # storage address -> [tensor objects using it, bytes]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:
        out = func(*args, **(kwargs or {}))
        existing: Set[int] = {_storage_key(t) for t in tree_leaves((args, kwargs)) if isinstance(t, Tensor)}
        for tensor in tree_leaves(out):
            if isinstance(tensor, Tensor):
                self._track(tensor, existing)
        return out

    def _track(self, tensor: Tensor, existing: Set[int]) -> None:
        key = _storage_key(tensor)
        entry = self._storages.get(key)
        if entry is None:
            if key == 0 or key in existing:  # empty, or a view of storage made before the context
                return
            entry = self._storages[key] = [0, tensor.untyped_storage().nbytes()]
            self.live += entry[1]
            self.allocated += entry[1]
            self.peak = max(self.peak, self.live)
        entry[0] += 1
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        entry = self._storages.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self._storages[key]
