"""The float weight a quantized layer (:mod:`.quant`) computes with: dequantized, in a dtype, or its 8-bit
row scales. Re-exported by :mod:`.quant`."""
from __future__ import annotations

import torch
from torch import nn

from .bnb import import_bitsandbytes
from .dequant_4bit import dequantize_4bit
from opentad.models.memory.dequant_cache import dequantized

__all__ = ["int8_scales", "dequantize_weight", "frozen_weight_as"]


def int8_scales(layer: nn.Module) -> torch.Tensor:
    """The fp32 row scales of an 8-bit layer (``absmax`` per output row).

    Raises:
        RuntimeError: the layer has none (it was loaded but not moved to a device).
    """
    # bitsandbytes moves the row scales from the weight to the layer state on first use
    scales = layer.weight.SCB if getattr(layer.weight, "SCB", None) is not None else layer.state.SCB
    if scales is None:
        raise RuntimeError("8-bit layer has no row scales: was it moved to a device after loading?")
    return scales


def dequantize_weight(layer: nn.Module) -> torch.Tensor:
    """The float32 weight ``[out, in]`` a quantized layer computes with.

    Raises:
        TypeError: ``layer`` is not a bitsandbytes quantized linear.
    """
    bnb = import_bitsandbytes()
    if isinstance(layer, bnb.nn.Linear4bit):
        return dequantize_4bit(layer.weight.data, layer.weight.quant_state).float()  # right on every CPU
    if isinstance(layer, bnb.nn.Linear8bitLt):
        return layer.weight.data.float() * int8_scales(layer).float()[:, None] / 127.0
    raise TypeError(f"not a quantized layer: {type(layer).__name__}")


def frozen_weight_as(layer: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """:func:`dequantize_weight` in ``dtype`` (the same values), dequantized once for several calls inside
    :func:`~.dequant_cache.reuse_dequantized` (4-bit layers).

    Raises:
        TypeError: ``layer`` is not a bitsandbytes quantized linear.
    """
    held = getattr(layer, "held_weight", None)
    if held is not None and held.dtype == dtype:
        return held
    bnb = import_bitsandbytes()
    if isinstance(layer, bnb.nn.Linear4bit):
        packed, state = layer.weight.data, layer.weight.quant_state
        return dequantized(packed, dtype, lambda: dequantize_4bit(packed, state))
    return dequantize_weight(layer).to(dtype)
