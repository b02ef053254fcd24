"""Saving and restoring the packed bytes of a quantized layer (:mod:`.quant`) as plain tensors.

bitsandbytes cannot load a ``Linear4bit`` state_dict into a fresh layer
(upstream issue #1946), so :func:`export_quantized` and
:func:`import_quantized` save and restore the packed bytes and the
quantization statistics as plain tensors; restoring is bit-exact. A layer
holding a dequantized copy of its weight (the memory planner's ``hold``)
gets one of the restored weight.
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from .bnb import import_bitsandbytes
from .dequant_4bit import dequantize_4bit
from .quant import int8_scales

__all__ = ["export_quantized", "import_quantized"]


def export_quantized(layer: nn.Module) -> Dict[str, torch.Tensor]:
    """Packed bytes and statistics of a quantized layer, as plain tensors.

    The result round-trips through ``torch.save``/``torch.load(weights_only=True)``
    and :func:`import_quantized` bit-exactly.
    """
    bnb = import_bitsandbytes()
    if isinstance(layer, bnb.nn.Linear4bit):
        state = {"weight": layer.weight.data.detach().cpu().clone()}
        for key, value in layer.weight.quant_state.as_dict(packed=True).items():
            state["qs." + key] = value.detach().cpu().clone()
        return state
    if isinstance(layer, bnb.nn.Linear8bitLt):
        return {"weight": layer.weight.data.detach().cpu().clone(), "SCB": int8_scales(layer).detach().cpu().clone()}
    raise TypeError(f"not a quantized layer: {type(layer).__name__}")


def import_quantized(layer: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Restore what :func:`export_quantized` saved into a layer of the same kind and shape.

    Raises:
        ValueError: the saved packed weight does not fit the layer.
    """
    bnb = import_bitsandbytes()
    device = layer.weight.device
    packed = state["weight"]
    if isinstance(layer, bnb.nn.Linear4bit):
        stats = {k[3:]: v for k, v in state.items() if k.startswith("qs.")}
        expected = layer.in_features * layer.out_features
        if packed.numel() * 2 != expected and packed.numel() * 2 != expected + 1:
            raise ValueError(
                f"packed 4-bit weight of {packed.numel()} bytes does not fit a "
                f"{layer.out_features}x{layer.in_features} layer"
            )
        held = getattr(layer, "held_weight", None)
        layer.weight = bnb.nn.Params4bit.from_prequantized(
            packed.to(device), stats, requires_grad=False, device=device
        )
        if held is not None:  # the memory planner's dequantized copy follows the new weight, never the old one
            layer.held_weight = dequantize_4bit(layer.weight.data, layer.weight.quant_state).to(held.dtype)
        return
    if isinstance(layer, bnb.nn.Linear8bitLt):
        if tuple(packed.shape) != (layer.out_features, layer.in_features):
            raise ValueError(f"int8 weight {tuple(packed.shape)} does not fit layer {tuple(layer.weight.shape)}")
        param = bnb.nn.Int8Params(packed.to(device), requires_grad=False, has_fp16_weights=False)
        param.CB = param.data
        param.SCB = state["SCB"].to(device)
        layer.weight = param
        layer.state.SCB = None
        layer.state.CB = None
        return
    raise TypeError(f"not a quantized layer: {type(layer).__name__}")
