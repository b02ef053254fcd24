"""Frozen 4-bit linears' forward products in fp8 (opt-in, approximate: ``custom.frozen_fp8``).

A frozen NF4 layer computes ``x @ W.T + b`` in bf16 from its dequantized
weight. With this option its forward product runs on the fp8 tensor cores
instead (about 1.5x the bf16 rate of an H100 or H200 at a ViT-g's shapes)::

    W  [M, K] -> Wq fp8 e4m3 [M, K], sw [1, M]   once per weight (cached on the layer, not in the state dict)
    x  [R, K] -> xq fp8 e4m3 [R, K], sx [R, 1]   at every call (fp8_rows.quantize_rows)
    y = (xq * sx) @ (Wq * sw).T + b               torch._scaled_mm: float32 accumulation, bf16 result

Each row of ``x`` and of ``W`` is scaled so that its largest magnitude maps
to 448, e4m3's largest value, and rounded to e4m3 (3 significand bits): a
relative error of at most 2^-4 per value in e4m3's normal range, an absolute
one of at most 2^-10 of the row's scale below it (e4m3 subnormals).
**Results change** (about 4% relative error per product on random data,
against 0.2% for bf16), so the option is off by default and its change in
synthetic mAP is reported (docs/qlora.md). The backward product stays bf16:
``grad_x = grad @ W`` with the layer's bf16 weight (held or dequantized), so
gradients see the fp8 forward's values but no fp8 rounding of their own;
with ``"all"`` it is fp8 too (the gradient's rows and ``W.T``'s rows quantized).

Inside a compiled block (``compile_blocks``) the product is traced with the
block, no graph break, wherever its tensors exist before the step: the fp8
weights (:func:`quantize_fp8_weights`, which the memory policy calls before
every backbone forward) and, for a bf16 backward, a held bf16 copy of the
weight (the memory planner's ``hold``). The rows' quantization is then
PyTorch's ops, which the compiler fuses with the norm or activation before
it. Elsewhere the product runs eagerly (one graph break per layer).

Only layers whose two dims are multiples of 16 (``_scaled_mm``'s rule) and
calls in bf16 (autocast or ``compute_dtype``) take the fp8 path, on CUDA
devices of compute capability 8.9 or more and on the CPU (PyTorch's
reference kernel: for tests and the CPU's synthetic runs); everything else
keeps the bf16 product. The memory policy installs it through the 4-bit
layers' ``frozen_matmul`` hook: :func:`set_fp8_products`.
"""
from __future__ import annotations

import logging
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from opentad.models.bricks.quant import frozen_weight_as, is_quantized, set_frozen_matmul
from opentad.models.memory.fp8_rows import fp8_supported, rows_product
from opentad.models.memory.fp8_weights import fp8_weight, made_copy

logger = logging.getLogger(__name__)

__all__ = ["MODES", "fp8_frozen_linear", "fp8_frozen_linear_all", "fp8_input_grad", "fp8_backward_operands",
           "input_grad_product", "made_fp8_operands", "quantize_fp8_weights", "check_mode", "set_fp8_products",
           "fp8_takes_every_product"]


class _FP8FrozenMatmul(torch.autograd.Function):
    """``[R, K] -> [R, M]`` of a frozen layer, eagerly: the fp8 forward (module docstring); backward to ``x``
    only, in bf16 with the layer's weight (held or dequantized) or (``fp8_backward``) as ``e4m3(grad) @
    e4m3(W)``, with row scales for the gradient and input-channel scales for ``W``."""

    @staticmethod
    def forward(ctx, x: Tensor, layer: nn.Module, bias: Optional[Tensor], fp8_backward: bool) -> Tensor:  # noqa: D102
        ctx.layer, ctx.fp8_backward = layer, fp8_backward
        return rows_product(x, *fp8_weight(layer, x.device), bias)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        grad = grad.to(torch.bfloat16)
        if ctx.fp8_backward:
            return rows_product(grad, *fp8_weight(ctx.layer, grad.device, transposed=True)), None, None, None
        with torch.autocast(grad.device.type, enabled=False):
            return grad @ frozen_weight_as(ctx.layer, torch.bfloat16), None, None, None


class _FP8TensorMatmul(torch.autograd.Function):
    """:class:`_FP8FrozenMatmul` from tensors alone, for compiled blocks (Dynamo traces it: no graph break).

    ``apply(x [R, K] bf16, weight_q [M, K], weight_scale [1, M], bias [M] or None, back [K, M] e4m3 or [M, K]
    bf16, back_scale [1, K] or None) -> [R, M]``: the forward of :func:`rows_product`; the input's gradient
    ``rows_product(grad, back, back_scale)`` (fp8) or, without ``back_scale``, ``grad @ back`` in bf16.
    """

    @staticmethod
    def forward(ctx, x, weight_q, weight_scale, bias, back, back_scale):  # noqa: D102
        ctx.save_for_backward(back, back_scale)
        return rows_product(x, weight_q, weight_scale, bias)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        back, back_scale = ctx.saved_tensors
        return input_grad_product(grad, back, back_scale), None, None, None, None, None


def input_grad_product(grad: Tensor, back: Tensor, back_scale: Optional[Tensor] = None) -> Tensor:
    """A frozen linear's input gradient ``grad @ W`` from tensors alone (traceable).

    Args:
        grad: ``[..., M]`` the gradient of the layer's output.
        back: ``W.T`` in e4m3 ``[K, M]`` (with ``back_scale``), else ``W`` ``[M, K]`` in the product's dtype.
        back_scale: ``[1, K]`` float32 scales of ``back``'s rows, or None.

    Returns:
        ``[..., K]``: fp8's ``rows_product`` (bf16) with ``back_scale``, else ``grad @ back`` in ``back``'s dtype.
    """
    if back_scale is not None:
        flat = rows_product(grad.reshape(-1, grad.shape[-1]).to(torch.bfloat16), back, back_scale)
        return flat.view(*grad.shape[:-1], flat.shape[-1])
    with torch.autocast(grad.device.type, enabled=False):
        return grad.to(back.dtype) @ back


def _fp8_dims(in_features: int, out_features: int) -> bool:
    """Whether ``_scaled_mm`` takes a ``[*, in_features] @ [in_features, out_features]`` product (multiples of 16)."""
    return in_features % 16 == 0 and out_features % 16 == 0


def _rows(layer: nn.Module, x: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
    """``x`` as ``[R, K]`` bf16 with unit stride along K, and the layer's bias in bf16."""
    flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
    if flat.stride(1) != 1:
        flat = flat.contiguous()
    return flat, (layer.bias.to(torch.bfloat16) if layer.bias is not None else None)


@torch.compiler.disable  # quantizes and caches weights, an autograd Function holding a module: eager only
def _eager_fp8_linear(layer: nn.Module, x: Tensor, dtype: torch.dtype, fp8_backward: bool) -> Optional[Tensor]:
    if (dtype != torch.bfloat16 or not _fp8_dims(x.shape[-1], layer.out_features) or x.numel() == 0
            or not fp8_supported(x.device)):
        return None
    flat, bias = _rows(layer, x)
    out = _FP8FrozenMatmul.apply(flat, layer, bias, fp8_backward)
    return out.reshape(*x.shape[:-1], layer.out_features)


def fp8_backward_operands(layer: nn.Module, device: torch.device) -> Optional[Tuple[Tensor, Tensor]]:
    """``(W.T in e4m3 [K, M], its scales [1, K])`` of a layer whose backward product is fp8 (``"all"``), where
    they are made already for ``device`` (:func:`quantize_fp8_weights`); else None. Traceable."""
    if layer.__dict__.get("frozen_matmul") is not fp8_frozen_linear_all or not _fp8_dims(
            layer.in_features, layer.out_features):
        return None
    back = made_copy(layer, "_fp8_cache_t", device)
    return None if back is None else (back.q, back.scale)


def made_fp8_operands(layer: nn.Module, x: Tensor, fp8_backward: bool) -> Optional[Tuple[Tensor, ...]]:
    """The tensors :class:`_FP8TensorMatmul` needs, where they exist already for ``x``'s device: the fp8 weight
    (made before the step: :func:`quantize_fp8_weights`), and the transposed fp8 weight or a held bf16 copy.

    Returns:
        ``(weight_q [M, K], weight_scale [1, M], back, back_scale)``: with ``fp8_backward`` ``back`` is ``W.T``
        in e4m3 ``[K, M]`` with ``back_scale [1, K]``, else the held bf16 ``W`` ``[M, K]`` and None; None where
        one of them is missing. Traceable.
    """
    cache = made_copy(layer, "_fp8_cache", x.device)
    if cache is None:
        return None
    if fp8_backward:
        back = made_copy(layer, "_fp8_cache_t", x.device)
        return None if back is None else (cache.q, cache.scale, back.q, back.scale)
    held = layer.held_weight
    return None if held is None or held.dtype != torch.bfloat16 else (cache.q, cache.scale, held, None)


def _fp8_linear(layer: nn.Module, x: Tensor, dtype: torch.dtype, fp8_backward: bool) -> Optional[Tensor]:
    """The hooks' product. Eagerly: :func:`_eager_fp8_linear`. Inside a compiled block: :class:`_FP8TensorMatmul`
    on the weights made before the step, traced with the block (the rows' quantization fused with what precedes
    it); without them (no :func:`quantize_fp8_weights` for this device, or a bf16 backward without a held copy)
    the eager product, at one graph break."""
    if not torch.compiler.is_compiling():
        return _eager_fp8_linear(layer, x, dtype, fp8_backward)
    if dtype != torch.bfloat16 or not _fp8_dims(x.shape[-1], layer.out_features):
        return None
    weights = made_fp8_operands(layer, x, fp8_backward)
    if weights is None:
        return _eager_fp8_linear(layer, x, dtype, fp8_backward)
    flat, bias = _rows(layer, x)
    weight_q, weight_scale, back, back_scale = weights
    out = _FP8TensorMatmul.apply(flat, weight_q, weight_scale, bias, back, back_scale)
    return out.reshape(*x.shape[:-1], layer.out_features)


def fp8_frozen_linear(layer: nn.Module, x: Tensor, dtype: torch.dtype) -> Optional[Tensor]:
    """``x @ W.T + b`` of a frozen 4-bit ``layer`` with the fp8 forward product, or None where it does not apply.

    Args:
        layer: a frozen bitsandbytes ``Linear4bit`` (the hook's owner).
        x: ``[..., K]``.
        dtype: the dtype the layer computes in; only bfloat16 takes the fp8 path.

    Returns:
        ``[..., M]`` bf16 (its backward in bf16), or None: not bf16, a dim not a multiple of 16, no rows, or a
        device without fp8 products (the layer then computes its bf16 product).
    """
    return _fp8_linear(layer, x, dtype, fp8_backward=False)


def fp8_frozen_linear_all(layer: nn.Module, x: Tensor, dtype: torch.dtype) -> Optional[Tensor]:
    """:func:`fp8_frozen_linear` whose backward product is fp8 too (``frozen_fp8="all"``); same Args and Returns."""
    return _fp8_linear(layer, x, dtype, fp8_backward=True)


def fp8_input_grad(layer: nn.Module, grad: Tensor, dtype: torch.dtype) -> Optional[Tensor]:
    """``grad @ W`` in fp8 where ``layer``'s own backward is fp8 (``frozen_fp8="all"``), for code that
    backpropagates through a frozen layer without calling it (:class:`~.frozen_mlp.FrozenMLPFunction`).

    Args:
        layer: any module; only a frozen 4-bit layer with the "all" hook qualifies.
        grad: ``[R, M]`` the gradient of the layer's output.
        dtype: the dtype of the backward product (only bfloat16 takes the fp8 path).

    Returns:
        ``[R, K]`` bf16, or None where the layer's backward product is not fp8 (the caller multiplies by ``W``).
    """
    if (vars(layer).get("frozen_matmul") is not fp8_frozen_linear_all or dtype != torch.bfloat16
            or not _fp8_dims(layer.in_features, layer.out_features) or grad.numel() == 0
            or not fp8_supported(grad.device)):
        return None
    return input_grad_product(grad, *fp8_weight(layer, grad.device, transposed=True))


#: ``frozen_fp8`` values -> the hook installed (None: removed)
MODES = {False: None, True: fp8_frozen_linear, "forward": fp8_frozen_linear, "all": fp8_frozen_linear_all}


def quantize_fp8_weights(module: nn.Module, device: torch.device) -> int:
    """Quantize now, on ``device``, every fp8 weight :func:`fp8_frozen_linear` will use in ``module`` (cached).

    The memory policy calls this before a training step's memory plan, so that the plan's measured fixed
    memory includes the fp8 copies (1 byte per weight) rather than their appearing block by block.

    Returns:
        bytes of the fp8 weights and scales cached in ``module``.
    """
    total = 0
    if not fp8_supported(device):
        return 0
    for layer in module.modules():
        hook = layer.__dict__.get("frozen_matmul")
        if hook not in (fp8_frozen_linear, fp8_frozen_linear_all) or layer.in_features % 16 or layer.out_features % 16:
            continue
        for transposed in (False, True) if hook is fp8_frozen_linear_all else (False,):
            weight, scale = fp8_weight(layer, device, transposed)
            total += weight.numel() * weight.element_size() + scale.numel() * scale.element_size()
    return total


def check_mode(mode):
    """``mode`` if it is a ``frozen_fp8`` value (a key of :data:`MODES`; 0 and 1 are not).

    Raises:
        ValueError: naming the value and the valid ones.
    """
    if not any(mode is key or (isinstance(mode, str) and mode == key) for key in MODES):
        raise ValueError(f"frozen_fp8={mode!r} is not one of False, True (= 'forward'), 'forward', 'all'")
    return mode


def set_fp8_products(module: nn.Module, mode) -> int:
    """Install the fp8 products of ``mode`` on every frozen 4-bit layer of ``module``, or remove them.

    Args:
        module: searched for layers with the ``frozen_matmul`` hook (``Linear4bitFrozen``).
        mode: a key of :data:`MODES`: False (remove the hook and the cached fp8 weights), True or
            ``"forward"`` (:func:`fp8_frozen_linear`), ``"all"`` (:func:`fp8_frozen_linear_all`).

    Returns:
        the number of layers that now use fp8 products.

    Raises:
        ValueError: ``mode`` is not one of them.
    """
    hook = MODES[check_mode(mode)]
    count = 0
    for layer in module.modules():
        if not hasattr(type(layer), "frozen_matmul"):
            continue
        for name in ("_fp8_cache", "_fp8_cache_t"):  # quantized again from the current weight at the next call
            layer.__dict__.pop(name, None)
        if hook is not None and not any(p.requires_grad for p in layer.parameters()):
            set_frozen_matmul(layer, hook)
            count += 1
        else:
            set_frozen_matmul(layer, None)
    return count


def fp8_takes_every_product(block: nn.Module, device: torch.device, dtype: Optional[torch.dtype]) -> bool:
    """Whether every frozen quantized layer of ``block`` computes its forward and backward products in fp8
    (``frozen_fp8="all"`` installed, both dims multiples of 16, bf16 calls, fp8 on ``device``): a dequantized
    bf16 copy of its weights (the memory planner's ``hold``) would then serve no product.

    Args:
        block: a transformer block.
        device: where the block computes.
        dtype: the dtype its layers compute in (autocast's); None: each layer's ``compute_dtype``.

    Returns:
        False as well when ``block`` has no quantized layer.
    """
    layers = [m for m in block.modules() if is_quantized(m)]
    if not layers or not fp8_supported(device):
        return False
    return all(
        vars(m).get("frozen_matmul") is fp8_frozen_linear_all and _fp8_dims(m.in_features, m.out_features)
        and (dtype if dtype is not None else getattr(m, "compute_dtype", None)) == torch.bfloat16
        for m in layers)
