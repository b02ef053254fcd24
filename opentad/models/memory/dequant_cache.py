"""Reuse each frozen 4-bit weight's dequantized copy within a short stretch of work.

A frozen NF4 layer (:class:`~.quant` ``Linear4bitFrozen``) dequantizes its
packed weight on every call, forward and backward. Where the same layer runs
several times in a row on parts of a batch, as in the chunked backward of
:mod:`.chunked_residual` (K row groups, each recomputed and backpropagated),
that is K dequantizations where one would do. Inside :func:`reuse_dequantized`
each weight is dequantized once per dtype and the copy is reused; the copies
are freed when the outermost context exits. The values are those of a fresh
dequantization, so results do not change.

The cache belongs to the thread that opened the context (autograd runs a
custom Function's backward, and the reentrant ``torch.autograd.grad`` inside
it, on one device thread), so two threads never share or clear each other's
copies. The copies are read-only: callers must not modify them in place.

:func:`hold_dequantized` keeps a copy for longer: as an attribute of the
layer (``held_weight``), until released, for the memory planner's ``hold`` plans.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Dict, Iterator, Optional, Tuple

import torch
from torch import Tensor, nn

from .offload import keep_on_device

__all__ = ["reuse_dequantized", "dequantized", "cached_weights", "hold_dequantized"]

_Key = Tuple[int, int, Tuple[int, ...], Tuple[int, ...], torch.device, torch.dtype]
_LOCAL = threading.local()  # .cache: {key: (packed, copy)} while a context is open on this thread


def _cache() -> Optional[Dict[_Key, Tuple[Tensor, Tensor]]]:
    return getattr(_LOCAL, "cache", None)


@contextlib.contextmanager
def reuse_dequantized() -> Iterator[None]:
    """Within the context, :func:`dequantized` computes each (weight, dtype) once. Nested contexts share
    the outermost one's copies."""
    if _cache() is not None:
        yield
        return
    _LOCAL.cache = {}
    try:
        yield
    finally:
        _LOCAL.cache = None


def cached_weights() -> int:
    """Number of dequantized copies this thread holds now (0 outside :func:`reuse_dequantized`)."""
    cache = _cache()
    return len(cache) if cache is not None else 0


def dequantized(packed: Tensor, dtype: torch.dtype, dequantize: Callable[[], Tensor]) -> Tensor:
    """``dequantize().to(dtype)``, computed once per ``(packed, dtype)`` inside :func:`reuse_dequantized`.

    Args:
        packed: the packed weight; its storage address, offset, shape, strides and device are the key (a
            layer's ``weight.data`` is a new tensor object at every call, its storage is not; the cache keeps
            the storage alive, so no other tensor takes its address while the context is open).
        dtype: the dtype of the copy.
        dequantize: computes the float weight from ``packed``.
    """
    cache = _cache()
    if cache is None:
        return dequantize().to(dtype)
    key = (packed.untyped_storage().data_ptr(), packed.storage_offset(), tuple(packed.shape), packed.stride(),
           packed.device, dtype)
    if key not in cache:
        cache[key] = (packed, dequantize().to(dtype))
    return cache[key][1]


def hold_dequantized(module: nn.Module, hold: bool, dtype: Optional[torch.dtype] = None) -> int:
    """Keep (``hold``) or drop a dequantized copy of every frozen 4-bit weight in ``module``.

    A 4-bit layer with a copy in the dtype it computes in multiplies with it
    instead of dequantizing at every call (forward, recomputation,
    backward): the same values, so the same results. The copy is a plain
    attribute (``held_weight``), never part of the state dict.

    Args:
        module: searched for bitsandbytes ``Linear4bit`` layers.
        hold: make (or keep) the copies; False drops them.
        dtype: the copies' dtype: the autocast dtype the layers will run under; None: each layer's own
            ``compute_dtype`` (float32 where it has none).

    Returns:
        bytes of the copies now held in ``module``.
    """
    import sys

    if "bitsandbytes" not in sys.modules:
        return 0
    from opentad.models.bricks.dequant_4bit import dequantize_4bit

    linear4bit = sys.modules["bitsandbytes"].nn.Linear4bit
    total = 0
    for layer in module.modules():
        if not isinstance(layer, linear4bit):
            continue
        if not hold:
            layer.held_weight = None
            continue
        want = dtype or getattr(layer, "compute_dtype", None) or torch.float32
        current = getattr(layer, "held_weight", None)
        if current is None or current.dtype != want:
            layer.held_weight = keep_on_device(dequantize_4bit(layer.weight.data, layer.weight.quant_state).to(want))
        total += layer.held_weight.numel() * layer.held_weight.element_size()
    return total
