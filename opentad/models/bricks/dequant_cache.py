"""Reuse each frozen 4-bit weight's dequantized copy within a short stretch of work.

A frozen NF4 layer (:class:`~.quant` ``Linear4bitFrozen``) dequantizes its
packed weight on every call, forward and backward. Where the same layer runs
several times in a row on parts of a batch, as in the chunked backward of
:mod:`.chunked_residual` (K row groups, each recomputed and backpropagated),
that is K dequantizations where one would do. Inside :func:`reuse_dequantized`
each weight is dequantized once per dtype and the copy is reused; the copies
are freed when the outermost context exits. The values are those of a fresh
dequantization, so results do not change.

The cache is one module-level stack, not thread- or context-local: autograd
may run a backward on another thread than the one that entered the context,
and a cached copy is valid for any caller (the weights are frozen).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Dict, Iterator, List, Tuple

import torch
from torch import Tensor

__all__ = ["reuse_dequantized", "dequantized", "cached_weights"]

_CACHES: List[Dict[Tuple[int, torch.dtype], Tuple[Tensor, Tensor]]] = []  # key: (storage address, dtype)


@contextlib.contextmanager
def reuse_dequantized() -> Iterator[None]:
    """Within the context, :func:`dequantized` computes each (weight, dtype) once. Nested contexts share
    the outermost one's copies."""
    if _CACHES:
        yield
        return
    _CACHES.append({})
    try:
        yield
    finally:
        _CACHES.clear()


def cached_weights() -> int:
    """Number of dequantized copies held now (0 outside :func:`reuse_dequantized`)."""
    return len(_CACHES[0]) if _CACHES else 0


def dequantized(packed: Tensor, dtype: torch.dtype, dequantize: Callable[[], Tensor]) -> Tensor:
    """``dequantize().to(dtype)``, computed once per ``(packed, dtype)`` inside :func:`reuse_dequantized`.

    Args:
        packed: the packed weight; its storage address is the key (a layer's ``weight.data`` is a new tensor
            object at every call, its storage is not; the cache keeps the storage alive, so the address
            stays unique).
        dtype: the dtype of the copy.
        dequantize: computes the float weight from ``packed``.
    """
    if not _CACHES:
        return dequantize().to(dtype)
    cache = _CACHES[0]
    key = (packed.untyped_storage().data_ptr() + packed.storage_offset() * packed.element_size(), dtype)
    if key not in cache:
        cache[key] = (packed, dequantize().to(dtype))
    return cache[key][1]
