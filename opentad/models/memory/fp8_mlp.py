"""A frozen MLP whose products are all fp8, with GELU fused into the quantization (``custom.fused_fp8_mlp``).

With ``frozen_fp8="all"`` a frozen MLP ``fc2(gelu(fc1(x)))`` computes, per
layer (:mod:`.fp8_matmul`)::

    h  = fc1(x)          rows_product(x, W1q, s1, b1)                     [R, H] bf16, kept for backward
    y  = fc2(gelu(h))    rows_product(gelu(h), W2q, s2, b2)               gelu(h) written in bf16, read again
    dz = dy @ W2         rows_product(dy, W2tq, s2t)                      [R, H] bf16
    dx = gelu'(h) dz @ W1  rows_product(gelu_backward(dz, h), W1tq, s1t)  gelu_backward written, read again

Here GELU and its backward are fused with the row quantization that the next
product starts with (:mod:`.fp8_activations`: one pass over the rows, the
bf16 activation never written)::

    y  = scaled_rows_product(*gelu_fp8_rows(h), W2q, s2, b2)
    dx = scaled_rows_product(*gelu_backward_fp8_rows(dz, h), W1tq, s1t)

The same arithmetic step for step (each activation rounded to bf16 before
its quantization, as the separate ops do), except that the kernels' ``erf``
and ``exp`` are their own: a value can move by one e4m3 step
(:mod:`.fp8_activations`). Approximate as ``frozen_fp8`` is; opt-in.

Used by :class:`~.frozen_mlp.FrozenFP8MLP`: eagerly inside
:class:`~.frozen_mlp.FrozenMLPFunction` (row chunks), and in compiled blocks
through :class:`FP8MLPFunction`, which takes tensors only (Dynamo traces it;
the activation ops stay whole, as custom ops) and, for the chunked
backward's recomputation (``unused``), leaves out GELU and ``fc2``'s product,
whose output nobody reads.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from opentad.models.memory.fp8_activations import CUSTOM_OPS, gelu_backward_fp8_rows, gelu_fp8_rows
from opentad.models.memory.fp8_matmul import fp8_frozen_linear_all
from opentad.models.memory.fp8_norm import layer_norm_fp8_rows, layer_norm_input_grad, norm_operands
from opentad.models.memory.fp8_rows import fp8_supported, rows_product, scaled_rows_product
from opentad.models.memory.fp8_weights import fp8_weight, made_copy

__all__ = ["FP8MLPWeights", "fp8_mlp_weights", "mlp_hidden", "mlp_output", "mlp_input_grad", "FP8MLPFunction",
           "fp8_mlp"]

BF16 = torch.bfloat16


class FP8MLPWeights(NamedTuple):
    """The fp8 operands of a frozen MLP: each layer's e4m3 weight ``[M, K]`` and scales ``[1, M]``, bias (bf16
    or None), and transposed e4m3 weight ``[K, M]`` and scales ``[1, K]`` (its input gradient's)."""

    fc1: Tensor
    fc1_scale: Tensor
    fc1_bias: Optional[Tensor]
    fc1_back: Tensor
    fc1_back_scale: Tensor
    fc2: Tensor
    fc2_scale: Tensor
    fc2_bias: Optional[Tensor]
    fc2_back: Tensor
    fc2_back_scale: Tensor

    def backs(self) -> tuple:
        """What backward needs besides ``h``: ``(fc1_back, fc1_back_scale, fc2_back, fc2_back_scale)``."""
        return self.fc1_back, self.fc1_back_scale, self.fc2_back, self.fc2_back_scale


def _all_fp8(layer: nn.Module) -> bool:
    """A frozen 4-bit layer whose products are fp8 both ways (``frozen_fp8="all"``), of dims ``_scaled_mm``
    takes, and whose bias (if any) does not train (the hook is installed on frozen 4-bit layers only)."""
    return (layer.__dict__.get("frozen_matmul") is fp8_frozen_linear_all and layer.in_features % 16 == 0
            and layer.out_features % 16 == 0 and (layer.bias is None or not layer.bias.requires_grad))


def _product_dtype(layer: nn.Module, x: Tensor) -> torch.dtype:
    return layer.product_dtypes(x)[0]


def fp8_mlp_weights(fc1: nn.Module, fc2: nn.Module, x: Tensor, *, made_only: bool) -> Optional[FP8MLPWeights]:
    """The fp8 operands of ``fc2(gelu(fc1(x)))``, or None where the fused path does not apply.

    It applies where both layers' products are fp8 both ways (``frozen_fp8="all"``), ``x`` is bf16 on a device
    with fp8 products, and both layers multiply in bf16 there (autocast's or their compute dtype).

    Args:
        fc1, fc2: the MLP's linears.
        x: ``[..., C]`` the MLP's input.
        made_only: take only fp8 weights made before the step (:func:`~.fp8_matmul.quantize_fp8_weights`;
            traced code cannot make them); else make missing ones (cached on the layer).
    """
    if not (_all_fp8(fc1) and _all_fp8(fc2)) or x.dtype != BF16:
        return None
    if not made_only and not fp8_supported(x.device):  # made copies exist only where it does
        return None
    if _product_dtype(fc1, x) != BF16 or _product_dtype(fc2, x) != BF16:
        return None
    parts = []
    for layer in (fc1, fc2):
        if made_only:
            forward, back = made_copy(layer, "_fp8_cache", x.device), made_copy(layer, "_fp8_cache_t", x.device)
            if forward is None or back is None:
                return None
            operands = (forward.q, forward.scale), (back.q, back.scale)
        else:
            operands = fp8_weight(layer, x.device), fp8_weight(layer, x.device, transposed=True)
        bias = layer.bias.to(BF16) if layer.bias is not None else None
        parts += [operands[0][0], operands[0][1], bias, operands[1][0], operands[1][1]]
    return FP8MLPWeights(*parts)


def mlp_hidden(w: FP8MLPWeights, x: Tensor) -> Tensor:
    """``h = fc1(x)``: ``[R, C]`` bf16 -> ``[R, H]`` bf16."""
    return rows_product(x, w.fc1, w.fc1_scale, w.fc1_bias)


def mlp_output(w: FP8MLPWeights, h: Tensor) -> Tensor:
    """``fc2(gelu(h))``: ``[R, H]`` bf16 -> ``[R, C_out]`` bf16, GELU fused with the quantization."""
    return scaled_rows_product(*gelu_fp8_rows(h), w.fc2, w.fc2_scale, w.fc2_bias)


def mlp_input_grad(grad: Tensor, h: Tensor, fc1_back: Tensor, fc1_back_scale: Tensor, fc2_back: Tensor,
                   fc2_back_scale: Tensor) -> Tensor:
    """The MLP's input gradient from its output's ``grad [R, C_out]`` and ``h [R, H]``: ``[R, C]`` bf16; the
    weights as :meth:`FP8MLPWeights.backs`."""
    grad_act = rows_product(grad.to(BF16), fc2_back, fc2_back_scale)
    return scaled_rows_product(*gelu_backward_fp8_rows(grad_act, h), fc1_back, fc1_back_scale)


class FP8MLPFunction(torch.autograd.Function):
    """``[R, C] -> [R, C_out]`` of :func:`mlp_hidden` and :func:`mlp_output`, keeping ``h`` for
    :func:`mlp_input_grad`; from tensors alone (traceable). ``unused``: the output is left uninitialised and
    only ``h`` is computed (a recomputation whose output nobody reads). With a norm (``eps`` not None) the MLP
    reads ``layer_norm(x)``, the norm fused with ``fc1``'s row quantization (:mod:`.fp8_norm`), and backward
    ends with the norm's. Gradients flow to ``x`` only.

    ``apply(x, unused, norm_weight, norm_bias, eps, *FP8MLPWeights)``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, unused: bool, norm_weight: Optional[Tensor], norm_bias: Optional[Tensor],
                eps: Optional[float], *weights: Optional[Tensor]) -> Tensor:  # noqa: D102
        w = FP8MLPWeights(*weights)
        ctx.normed = eps is not None
        if ctx.normed:
            q, scale, mean, rstd = layer_norm_fp8_rows(x, norm_weight, norm_bias, eps)
            h = scaled_rows_product(q, scale, w.fc1, w.fc1_scale, w.fc1_bias)
            ctx.save_for_backward(h, *w.backs(), x, mean, rstd, norm_weight, norm_bias)
        else:
            h = mlp_hidden(w, x)
            ctx.save_for_backward(h, *w.backs())
        if unused:
            return x.new_empty((x.shape[0], w.fc2.shape[0]))
        return mlp_output(w, h)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        h, *backs = ctx.saved_tensors[:5]
        dx = mlp_input_grad(grad, h, *backs)
        if ctx.normed:
            dx = layer_norm_input_grad(dx, *ctx.saved_tensors[5:])
        return (dx, None, None, None, None) + (None,) * len(FP8MLPWeights._fields)


def fp8_mlp(fc1: nn.Module, fc2: nn.Module, x: Tensor, *, unused: bool = False, made_only: bool = True,
            norm: Optional[nn.Module] = None) -> Optional[Tensor]:
    """``fc2(gelu(fc1(x)))`` through :class:`FP8MLPFunction` where it applies (traceable with ``made_only``).

    Args:
        fc1, fc2: the frozen MLP's linears.
        x: ``[..., C]`` bf16.
        unused: leave the output uninitialised (its gradient to ``x`` is still the MLP's).
        made_only: as :func:`fp8_mlp_weights` (True inside a compiled block).
        norm: a frozen layer norm the MLP reads ``x`` through (``fc2(gelu(fc1(norm(x))))``), fused with
            ``fc1``'s row quantization (:mod:`.fp8_norm`), or None.

    Returns:
        ``[..., C_out]`` bf16, or None: not every product fp8 "all" (with its weights made before the step, for
        ``made_only``), not bf16, a ``norm`` that trains or is not a layer norm over ``C``, or, for ``made_only``
        (the traced callers), no custom ops (torch < 2.4: the caller keeps the layers' own products, which
        Inductor fuses itself).
    """
    if made_only and not CUSTOM_OPS:
        return None
    weights = fp8_mlp_weights(fc1, fc2, x, made_only=made_only)
    operands = (None, None, None) if norm is None else norm_operands(norm, x)
    if weights is None or operands is None:
        return None
    flat = x.reshape(-1, x.shape[-1])
    if flat.stride(1) != 1:
        flat = flat.contiguous()
    out = FP8MLPFunction.apply(flat, unused, *operands, *weights)
    return out.view(*x.shape[:-1], out.shape[-1])
