"""The fp8 copies of the frozen 4-bit layers' weights (``custom.frozen_fp8``): made once per weight, cached on the
layer, never in the state dict, never shared by a copy of the layer.

A layer's copy is remade when it gets another weight parameter or quantization state (loading quantized weights
replaces them), when its parameter is copied into in place (``load_state_dict``) or for another device.
:mod:`.fp8_matmul` multiplies with them; compiled blocks read them as plain tensors (:func:`made_copy`).
"""
from __future__ import annotations

import weakref
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from opentad.models.bricks.quant import frozen_weight_as
from opentad.models.memory.fp8_rows import quantize_rows_reference
from opentad.models.memory.offload import keep_on_device

__all__ = ["fp8_weight", "made_copy"]


class _FP8Cache:
    """One layer's fp8 weight and the weight it was made from (by identity: weak references to the weight
    parameter and its quantization state, its version counter, the device). Never pickled or deep-copied
    with the layer: a copy starts empty and quantizes its own weight on first use."""

    def __init__(self) -> None:
        self.weight = self.state = self.version = self.device = self.q = self.scale = None

    def __reduce__(self):
        return (_FP8Cache, ())

    def __deepcopy__(self, memo) -> "_FP8Cache":
        return _FP8Cache()

    @staticmethod
    def _ref(obj):
        try:
            return weakref.ref(obj)
        except TypeError:  # not weak-referenceable: hold it
            return lambda: obj

    def holds(self, weight: Tensor, state: object, device: torch.device) -> bool:
        """Whether the cached copy was made from this very weight (and state), unchanged, on ``device``."""
        return (self.q is not None and self.weight() is weight and self.state() is state
                and self.version == weight._version and self.device == device)

    def fill(self, weight: Tensor, state: object, device: torch.device, q: Tensor, scale: Tensor) -> None:
        self.weight, self.state = self._ref(weight), self._ref(state)
        self.version, self.device = weight._version, device
        self.q, self.scale = keep_on_device(q), keep_on_device(scale)  # saved by compiled blocks: never offloaded


def fp8_weight(layer: nn.Module, device: torch.device, transposed: bool = False) -> Tuple[Tensor, Tensor]:
    """The layer's weight in e4m3 with its row scales, quantized once and cached on the layer (``_fp8_cache``;
    ``_fp8_cache_t`` for the transposed copy the fp8 backward multiplies with).

    A new weight parameter or quantization state (loading quantized weights replaces them), an in-place copy
    into the parameter (``load_state_dict``) or another device quantizes again. (A change through
    ``weight.data`` bumps no version: call :func:`~.fp8_matmul.set_fp8_products` again after one.)

    Args:
        layer: a frozen 4-bit layer ``[M, K]``.
        device: where the copy is needed.
        transposed: quantize ``W.T`` instead: one scale per input channel.

    Returns:
        ``(q [M, K] e4m3, scale [1, M] float32)``; transposed: ``(q [K, M], scale [1, K])``.
    """
    weight, state = layer.weight, getattr(layer.weight, "quant_state", None)
    name = "_fp8_cache_t" if transposed else "_fp8_cache"
    cache = layer.__dict__.get(name)
    if cache is None:
        cache = layer.__dict__[name] = _FP8Cache()
    if not cache.holds(weight, state, device):
        w = frozen_weight_as(layer, torch.float32).to(device)
        # ``q`` is contiguous: ``q.t()`` is column-major, the only second operand ``_scaled_mm`` takes on CUDA
        q, scale = quantize_rows_reference(w.t() if transposed else w)
        cache.fill(weight, state, device, q, scale.reshape(1, -1).contiguous())
    return cache.q, cache.scale


def made_copy(layer: nn.Module, name: str, device: torch.device) -> Optional[_FP8Cache]:
    """The layer's cache ``name`` where it holds a copy for ``device`` (read as is: traceable)."""
    cache = layer.__dict__.get(name)
    return cache if cache is not None and cache.q is not None and cache.device == device else None
