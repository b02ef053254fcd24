"""Quantized linear layers (bitsandbytes) and the helpers around them.

A quantized layer is always made from a float ``nn.Linear`` whose weights are
already final (pretrained or initialised): bitsandbytes quantizes a weight
when the layer is moved with ``.to()``/``.cuda()``, so :func:`quantize_linear`
copies the float weight into a ``Params4bit``/``Int8Params`` and moves the new
layer to the float layer's device, which performs the quantization on CPU
too. Biases stay float.

The float weight a quantized layer computes with (``dequantize_weight``,
``frozen_weight_as``, ``int8_scales``, re-exported here): :mod:`.quant_weights`.
Saving and restoring a quantized layer's packed bytes: :mod:`.quant_io`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Tuple

import torch
from torch import nn

from .bnb import import_bitsandbytes
from .dequant_4bit import dequantize_4bit
from .quant_weights import dequantize_weight, frozen_weight_as, int8_scales
from opentad.models.memory.dequant_cache import dequantized

__all__ = [
    "QuantSpec",
    "quantize_linear",
    "dequantize_weight",
    "frozen_weight_as",
    "is_quantized",
    "int8_scales",
]


@dataclasses.dataclass(frozen=True)
class QuantSpec:
    """How to quantize a linear layer.

    Args:
        bits: 4 (``Linear4bit``) or 8 (``Linear8bitLt``).
        quant_type: 4-bit data type, ``"nf4"`` (default, QLoRA's) or ``"fp4"``
            (bitsandbytes' own default, hence set explicitly here).
        double_quant: quantize the 4-bit block scales again (QLoRA's double
            quantization, ``compress_statistics`` in bitsandbytes).
        compute_dtype: dtype of the 4-bit matmul; None picks bf16 on CUDA
            and fp32 on CPU when the layer is built.
        blocksize: 4-bit block size.

    Raises:
        ValueError: unsupported ``bits`` or ``quant_type``.
    """

    bits: int = 4
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: Optional[torch.dtype] = None
    blocksize: int = 64

    def __post_init__(self):
        if self.bits not in (4, 8):
            raise ValueError(f"quantize bits must be 4 or 8, got {self.bits!r}")
        if self.quant_type not in ("nf4", "fp4"):
            raise ValueError(f"quant_type must be 'nf4' or 'fp4', got {self.quant_type!r}")

    def resolved_compute_dtype(self, device: torch.device) -> torch.dtype:
        if self.compute_dtype is not None:
            return self.compute_dtype
        return torch.bfloat16 if device.type == "cuda" else torch.float32


def _bnb():
    return import_bitsandbytes()  # lazily: importing opentad must not need it


class _FrozenInt8Matmul(torch.autograd.Function):
    """``x @ dequant(W).T`` for a frozen int8 weight; backward re-dequantizes.

    Only the int8 weight and its row scales are kept for backward (no float
    copy of the weight is saved), and no gradient flows to the weight.
    """

    @staticmethod
    def forward(ctx, x, int8_weight, scales):
        ctx.save_for_backward(int8_weight, scales)
        weight = int8_weight.to(x.dtype) * (scales.to(x.dtype)[:, None] / 127.0)
        return x @ weight.t()

    @staticmethod
    def backward(ctx, grad_out):
        int8_weight, scales = ctx.saved_tensors
        weight = int8_weight.to(grad_out.dtype) * (scales.to(grad_out.dtype)[:, None] / 127.0)
        return grad_out @ weight, None, None


class _FrozenNF4Matmul(torch.autograd.Function):
    """``x @ dequant(W).T + b`` for a frozen 4-bit weight, in ``dtype``; backward re-dequantizes.

    bitsandbytes' own 4-bit matmul keeps its input for backward even when
    the weight is frozen (only the input's gradient is needed, which does not
    use it); inside a checkpointed block that holds one activation per layer
    during the block's backward. Here nothing but a reference to the packed
    weight (a frozen buffer, not an activation) is kept, and the weight is
    dequantized again in backward (once for several calls inside
    :func:`~.dequant_cache.reuse_dequantized`). The bias, frozen too, gets no gradient.
    """

    @staticmethod
    def forward(ctx, x, packed, quant_state, bias, dtype):
        ctx.packed, ctx.quant_state, ctx.dtype, ctx.in_dtype = packed, quant_state, dtype, x.dtype
        weight = dequantized(packed, dtype, lambda: dequantize_4bit(packed, quant_state))
        bias = bias.to(dtype) if bias is not None else None
        with torch.autocast(x.device.type, enabled=False):  # exactly ``dtype``
            return torch.nn.functional.linear(x.to(dtype), weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        weight = dequantized(ctx.packed, ctx.dtype,
                             lambda: dequantize_4bit(ctx.packed, ctx.quant_state))
        grad_x = grad_out.to(ctx.dtype) @ weight
        return grad_x.to(ctx.in_dtype), None, None, None, None


_INT8_CLASS = None
_NF4_CLASS = None


@torch.compiler.disable  # Dynamo cannot trace bitsandbytes' 4-bit weight type: one graph break here
def _packed_matmul(layer: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x @ dequant(W).T + b`` of a 4-bit layer in ``dtype`` (:class:`_FrozenNF4Matmul`)."""
    state = layer.weight.quant_state
    if state is None:
        raise RuntimeError("4-bit layer has no quantization state: was it moved to a device?")
    return _FrozenNF4Matmul.apply(x, layer.weight.data, state, layer.bias, dtype)


def _nf4_layer_class():
    """``Linear4bit`` with the packed-weight matmul of :class:`_FrozenNF4Matmul`.

    Same storage and arithmetic as bitsandbytes' layer (input cast to
    ``compute_dtype``, output cast back to the input's dtype; under autocast,
    computed and returned in the autocast dtype as a float linear would be:
    bitsandbytes' float32 output there doubles the activations), but it never
    saves its input for backward, never changes its own tensors in forward
    (bitsandbytes' casts the bias in place and, in eval mode on some CPUs,
    repacks the weight) and never trains the weight. Its subclass
    ``Linear4bitHooked`` (``.hooked_class``) is the same layer with a product hook
    installed (:func:`set_frozen_matmul`).
    """
    global _NF4_CLASS
    if _NF4_CLASS is None:
        bnb = _bnb()

        class Linear4bitFrozen(bnb.nn.Linear4bit):
            held_weight = None  # a dequantized copy, set by the memory planner (hold_dequantized)
            frozen_matmul = None  # (layer, x, dtype) -> output or None; only on hooked layers (set_frozen_matmul)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                dtype, out_dtype = self.product_dtypes(x)
                return self.frozen_product(x, dtype).to(out_dtype)

            def product_dtypes(self, x: torch.Tensor) -> Tuple[torch.dtype, torch.dtype]:
                """(the product's dtype, the output's): autocast's for both under autocast, as any linear's."""
                device = x.device.type
                if torch.is_autocast_enabled(device):
                    dtype = torch.get_autocast_dtype(device)
                    return dtype, dtype
                return (self.compute_dtype if self.compute_dtype is not None else x.dtype), x.dtype

            def frozen_product(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
                """``x @ W.T + b`` in ``dtype`` from the held copy when it has that dtype, else the packed weight."""
                held = self.held_weight
                if held is not None and held.dtype == dtype:  # never touches the packed weight: compilable
                    bias = self.bias.to(dtype) if self.bias is not None else None
                    with torch.autocast(x.device.type, enabled=False):  # exactly ``dtype``, as the matmul below
                        return torch.nn.functional.linear(x.to(dtype), held, bias)
                return _packed_matmul(self, x, dtype)

        class Linear4bitHooked(Linear4bitFrozen):
            """A frozen 4-bit layer whose product goes through its ``frozen_matmul`` hook first (falling back to
            the plain product where the hook returns None). A class of its own, not a test of the attribute in
            one ``forward``: a compiled block's cached code checks the type of a layer, not its plain
            attributes, and would otherwise run one model's hook decision for another model's layers."""

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                dtype, out_dtype = self.product_dtypes(x)
                out = self.frozen_matmul(self, x, dtype)
                if out is None:
                    out = self.frozen_product(x, dtype)
                return out.to(out_dtype)

        Linear4bitFrozen.hooked_class = Linear4bitHooked
        _NF4_CLASS = Linear4bitFrozen
    return _NF4_CLASS


def set_frozen_matmul(layer: nn.Module, hook: Optional[Callable]) -> None:
    """Install ``hook`` (``(layer, x, dtype) -> output or None``) as the product of a frozen 4-bit ``layer``, or
    remove it (None). The layer's class changes with it (``Linear4bitHooked`` and back).

    Raises:
        TypeError: ``layer`` is not a frozen 4-bit layer of this module.
    """
    frozen = _nf4_layer_class()
    if not isinstance(layer, frozen):
        raise TypeError(f"set_frozen_matmul: {type(layer).__name__} is not a frozen 4-bit layer (Linear4bitFrozen)")
    if hook is None:
        layer.__dict__.pop("frozen_matmul", None)
        layer.__class__ = frozen
    else:
        layer.frozen_matmul = hook
        layer.__class__ = frozen.hooked_class


def _int8_layer_class():
    """``Linear8bitLt`` whose matmul uses the dequantized weight.

    bitsandbytes' own int8 matmul also quantizes the activations in eval mode
    (and casts them to fp16 on CPU) but not in train mode, so the same layer
    gives different outputs in ``train()`` and ``eval()``. This subclass keeps
    bitsandbytes' storage (int8 weight, fp32 row scales) and always computes
    ``x @ dequant(W).T`` in the input's dtype, in both modes.
    """
    global _INT8_CLASS
    if _INT8_CLASS is None:
        bnb = _bnb()

        class Linear8bitDequant(bnb.nn.Linear8bitLt):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                out = _FrozenInt8Matmul.apply(x, self.weight.data, int8_scales(self))
                if self.bias is not None:
                    out = out + self.bias.to(out.dtype)
                return out

        _INT8_CLASS = Linear8bitDequant
    return _INT8_CLASS


def is_quantized(module: nn.Module) -> bool:
    """True for a bitsandbytes ``Linear4bit`` or ``Linear8bitLt``.

    False, without importing bitsandbytes, when it was never imported: then
    no quantized layer can exist (float models work where it is absent).
    """
    import sys

    if "bitsandbytes" not in sys.modules:
        return False
    bnb = sys.modules["bitsandbytes"]
    return isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt))


def quantize_linear(linear: nn.Linear, spec: QuantSpec) -> nn.Module:
    """Return a frozen bitsandbytes layer holding ``linear``'s weight, quantized.

    Args:
        linear: a float ``nn.Linear`` with its final weights ([out, in]).
        spec: the quantization settings.

    Returns:
        ``Linear4bit`` or ``Linear8bitLt`` on ``linear``'s device; its weight
        never requires grad; the bias (if any) is a frozen float parameter.

    Raises:
        TypeError: ``linear`` is not an ``nn.Linear``.
    """
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"quantize_linear expects nn.Linear, got {type(linear).__name__}")
    bnb = _bnb()
    device = linear.weight.device
    weight = linear.weight.detach().float().cpu().clone()
    has_bias = linear.bias is not None
    if spec.bits == 4:
        layer = _nf4_layer_class()(
            linear.in_features,
            linear.out_features,
            bias=has_bias,
            compute_dtype=spec.resolved_compute_dtype(device),
            compress_statistics=spec.double_quant,
            quant_type=spec.quant_type,
            device="cpu",
        )
        layer.weight = bnb.nn.Params4bit(
            weight,
            requires_grad=False,
            quant_type=spec.quant_type,
            compress_statistics=spec.double_quant,
            blocksize=spec.blocksize,
        )
    else:
        layer = _int8_layer_class()(
            linear.in_features, linear.out_features, bias=has_bias, has_fp16_weights=False, device="cpu"
        )
        layer.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    if has_bias:
        layer.bias = nn.Parameter(linear.bias.detach().clone().cpu(), requires_grad=False)
    return layer.to(device)  # the move is what quantizes
