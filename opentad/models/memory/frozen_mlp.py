"""The MLP of a frozen transformer block, computed in row chunks.

When neither ``fc1`` nor ``fc2`` trains (AdaTAD's frozen ViT, float or
quantized), backward needs only the gradient with respect to the MLP's input::

    h = fc1(x);  y = fc2(gelu(h))
    dx = (gelu'(h) * (dy @ W2)) @ W1

Autograd's version materialises ``gelu(h)`` in forward and ``dy @ W2`` and
its product with ``gelu'(h)`` in backward, each as wide as the hidden layer
(``4 C``, ``4.36 C`` for ViT-g) for every token: inside a checkpointed block
these transients are the largest part of the block's working set.
:class:`FrozenMLPFunction` keeps only ``h`` (which autograd keeps too) and
runs both passes over chunks of rows, so the transients are one chunk wide.
Same arithmetic, same dtypes (autocast included), no extra computation.

Inside :func:`output_unused` (the chunked backward's recomputation,
:mod:`.chunked_residual`, where the block's output only carries autograd's
graph) the forward computes ``h = fc1(x)`` alone and returns an
uninitialised output: ``gelu(h)`` and the ``fc2`` product, a third of the
linear multiply-adds of a ViT block, are skipped, since backward never reads them.

The memory policy (:mod:`.policy`) switches a block's
:class:`~opentad.models.bricks.vit.FFN` to its subclass :class:`FrozenMLP`
(or :class:`FrozenFP8MLP`, ``fused_fp8_mlp``: GELU fused with the fp8
products' row quantization, :mod:`.fp8_mlp`), which differs only in
``forward``: same state, same state-dict keys.
"""
from __future__ import annotations

import contextlib
import math
import threading
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opentad.models.bricks.quant import frozen_weight_as, is_quantized
from opentad.models.bricks.vit import FFN
from opentad.models.memory.fp8_matmul import fp8_backward_operands, fp8_input_grad, input_grad_product
from opentad.models.memory.fp8_mlp import fp8_mlp, fp8_mlp_weights, mlp_input_grad, mlp_output

__all__ = ["FrozenMLP", "FrozenFP8MLP", "FrozenMLPFunction", "frozen_weight", "is_frozen_linear", "chunk_rows",
           "output_unused", "input_grad_only", "exact_gelu_without_dropout", "unused_output_mlp",
           "recomputing_unused_output"]

#: target size of one chunk of the hidden activation
CHUNK_BYTES = 64 * 2**20


_STATE = threading.local()


@contextlib.contextmanager
def output_unused() -> Iterator[None]:
    """Within: :class:`FrozenMLPFunction` returns an uninitialised output and computes only what its backward
    reads (``fc1(x)``).

    For recomputations whose result is used only to backpropagate, never read: autograd's backward of the
    sums and stochastic-depth scales after the MLP needs none of its values. Thread-local (CUDA runs
    backward on its own thread, where the recomputation enters and leaves this context).
    """
    previous = getattr(_STATE, "output_unused", False)
    _STATE.output_unused = True
    try:
        yield
    finally:
        _STATE.output_unused = previous


def frozen_weight(layer: nn.Module, dtype: torch.dtype) -> Optional[Tensor]:
    """``W`` ``[out, in]`` of a frozen plain or quantized linear, in ``dtype``; None for other layers.

    The input gradient of the layer is ``grad_out @ W``.
    """
    if type(layer) is nn.Linear:
        return None if layer.weight.requires_grad else layer.weight.to(dtype)
    if is_quantized(layer):
        return frozen_weight_as(layer, dtype)
    return None


def is_frozen_linear(layer: nn.Module) -> bool:
    """A layer :func:`frozen_weight` handles: a plain ``nn.Linear`` that does not train, or a quantized one."""
    if type(layer) is nn.Linear:
        return not any(p.requires_grad for p in layer.parameters())
    return is_quantized(layer) and not any(p.requires_grad for p in layer.parameters())


def chunk_rows(rows: int, hidden: int, element_size: int) -> int:
    """Rows per chunk so that a ``[rows, hidden]`` chunk is about :data:`CHUNK_BYTES`."""
    chunks = max(1, math.ceil(rows * hidden * element_size / CHUNK_BYTES))
    return max(1, math.ceil(rows / chunks))


class FrozenMLPFunction(torch.autograd.Function):
    """``fc2(gelu(fc1(x)))`` for frozen ``fc1``/``fc2``, keeping only ``fc1(x)`` for backward.

    ``apply(x [..., C], fc1, fc2, fused) -> [..., C_out]``; gradients flow to ``x`` only. ``fused``: where both
    layers' products are fp8 "all" in bf16, GELU and its backward fused with the quantization
    (:mod:`.fp8_mlp`).
    """

    @staticmethod
    def forward(ctx, x: Tensor, fc1: nn.Module, fc2: nn.Module, fused: bool = False) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])
        ctx.fused = fp8_mlp_weights(fc1, fc2, x, made_only=False) if fused else None
        rows = flat.shape[0]
        width = getattr(fc2, "out_features", None)
        unused = getattr(_STATE, "output_unused", False) and isinstance(width, int)
        first = fc1(flat[:1])
        step = chunk_rows(rows, first.shape[-1], first.element_size())
        hidden = flat.new_empty((rows, first.shape[-1]), dtype=first.dtype)
        out = flat.new_empty((rows, width), dtype=first.dtype) if unused else None  # never read (output_unused)
        for start in range(0, rows, step):
            h = fc1(flat[start : start + step])
            hidden[start : start + step] = h
            if unused:
                continue
            y = fc2(F.gelu(h)) if ctx.fused is None else mlp_output(ctx.fused, h)
            if out is None:
                out = flat.new_empty((rows, y.shape[-1]), dtype=y.dtype)
            out[start : start + step] = y
        ctx.save_for_backward(hidden)
        ctx.layers, ctx.step, ctx.in_shape, ctx.in_dtype = (fc1, fc2), step, x.shape, x.dtype
        # each layer's product dtype under this forward's autocast state: its backward product is fp8 only where
        # its forward's is (bf16 products of an fp8 "all" layer)
        ctx.product_dtypes = (_product_dtype(fc1, flat), _product_dtype(fc2, hidden[:1]))
        return out.view(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (hidden,) = ctx.saved_tensors
        fc1, fc2 = ctx.layers
        dtype = hidden.dtype
        weights = {}  # dequantized (or held) only for a layer whose backward product is not fp8

        def input_grad(layer: nn.Module, grad: Tensor) -> Tensor:  # as the layer's own backward computes it
            out = fp8_input_grad(layer, grad, ctx.product_dtypes[layer is fc2])
            if out is None:
                if layer not in weights:
                    weights[layer] = frozen_weight(layer, dtype)
                out = grad.to(dtype) @ weights[layer]
            return out

        grad = grad_out.reshape(-1, grad_out.shape[-1])
        grad_in = grad.new_empty((hidden.shape[0], ctx.in_shape[-1]), dtype=ctx.in_dtype)
        for start in range(0, hidden.shape[0], ctx.step):
            end = start + ctx.step
            if ctx.fused is not None:
                grad_in[start:end] = mlp_input_grad(grad[start:end], hidden[start:end], *ctx.fused.backs())
                continue
            grad_act = input_grad(fc2, grad[start:end])
            grad_h = torch.ops.aten.gelu_backward(grad_act.to(dtype), hidden[start:end])
            grad_in[start:end] = input_grad(fc1, grad_h)
        return grad_in.view(ctx.in_shape), None, None, None


class FrozenMLP(FFN):
    """:class:`~opentad.models.bricks.vit.FFN` whose frozen ``fc1``/``fc2`` run through :class:`FrozenMLPFunction`.

    Taken only when autograd needs just the input's gradient: grad enabled,
    ``x`` requiring grad, an exact GELU, no active dropout, both linears
    frozen (plain or quantized); otherwise autograd's own MLP, as :class:`FFN`.
    """

    def takes_function(self) -> bool:
        """Whether :class:`FrozenMLPFunction` runs this MLP whenever its input needs a gradient
        (:func:`input_grad_only`; and then the chunked recomputation skips ``fc2``)."""
        return input_grad_only(self)

    def _chunkable(self, x: Tensor) -> bool:
        return torch.is_grad_enabled() and x.requires_grad and self.takes_function()

    def forward(self, x: Tensor) -> Tensor:
        """``[..., C] -> [..., C]``."""
        if self._chunkable(x):
            return _frozen_mlp(x, self.layers[0][0], self.layers[1])
        return self.layers(x)


class FrozenFP8MLP(FrozenMLP):
    """:class:`FrozenMLP` whose GELU and its backward are fused with the fp8 products' row quantization
    (``fused_fp8_mlp``, with ``frozen_fp8="all"``: :mod:`.fp8_mlp`) wherever the MLP is frozen: eagerly in
    :class:`FrozenMLPFunction`'s chunks (or whole, without a gradient), compiled through
    :class:`~.fp8_mlp.FP8MLPFunction`; elsewhere (a layer not fp8 "all", not bf16) as :class:`FrozenMLP`."""

    def forward(self, x: Tensor) -> Tensor:
        """``[..., C] -> [..., C]``."""
        fc1, fc2 = self.layers[0][0], self.layers[1]
        if torch.compiler.is_compiling():  # fp8_mlp's checks (the hooks mark frozen 4-bit layers): no parameter walk
            out = fp8_mlp(fc1, fc2, x, made_only=True) if exact_gelu_without_dropout(self) else None
            return self.layers(x) if out is None else out
        if not self.takes_function():
            return self.layers(x)
        if self._chunkable(x):
            return _frozen_mlp(x, fc1, fc2, True)
        out = fp8_mlp(fc1, fc2, x, made_only=False)
        return self.layers(x) if out is None else out


@torch.compiler.disable  # Dynamo cannot trace this Function (modules as arguments, writes into buffers)
def _frozen_mlp(x: Tensor, fc1: nn.Module, fc2: nn.Module, fused: bool = False) -> Tensor:
    return FrozenMLPFunction.apply(x, fc1, fc2, fused)


def _product_dtype(layer: nn.Module, x: Tensor) -> torch.dtype:
    """The dtype ``layer`` multiplies ``x`` in: a frozen 4-bit layer's ``product_dtypes`` (autocast's, else its
    ``compute_dtype``), else autocast's or ``x``'s."""
    if hasattr(layer, "product_dtypes"):
        return layer.product_dtypes(x)[0]
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


def input_grad_only(mlp: nn.Module) -> bool:
    """Whether backward through ``mlp`` (an :class:`~opentad.models.bricks.vit.FFN`) needs only its input's
    gradient and ``fc1(x)``: an exact GELU, no active dropout, both linears frozen (plain or quantized)."""
    return exact_gelu_without_dropout(mlp) and is_frozen_linear(mlp.layers[0][0]) and is_frozen_linear(mlp.layers[1])


def exact_gelu_without_dropout(mlp: nn.Module) -> bool:
    """``mlp``'s activation is the exact GELU and no dropout is active (traceable)."""
    _, act, drop = mlp.layers[0]
    if not isinstance(act, nn.GELU) or act.approximate != "none":
        return False
    return not (mlp.training and (drop.p > 0 or mlp.layers[2].p > 0))


class _UnusedOutputLinear(torch.autograd.Function):
    """``[..., K] -> [..., M]`` left uninitialised (nothing reads it) whose backward is a frozen linear's input
    gradient, from tensors alone (compiled blocks trace it): :func:`~.fp8_matmul.input_grad_product`."""

    @staticmethod
    def forward(ctx, z, back, back_scale, width, dtype):  # noqa: D102
        ctx.save_for_backward(back, back_scale)
        ctx.z_dtype = z.dtype
        return z.new_empty((*z.shape[:-1], width), dtype=dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        back, back_scale = ctx.saved_tensors
        return input_grad_product(grad, back, back_scale).to(ctx.z_dtype), None, None, None, None


def _fc2_operands(fc2: nn.Module, z: Tensor) -> Optional[Tuple[Tensor, Optional[Tensor], torch.dtype]]:
    """(back, back_scale, output dtype) of :class:`_UnusedOutputLinear` for ``fc2`` called on ``z``, where its
    input gradient's operands exist as tensors: fp8 "all"'s transposed weight, a held copy in the product's
    dtype, or a frozen ``nn.Linear``'s weight; None for a packed 4-bit weight without a held copy."""
    dtype = _product_dtype(fc2, z)
    out_dtype = fc2.product_dtypes(z)[1] if hasattr(fc2, "product_dtypes") else dtype
    if dtype == torch.bfloat16:
        fp8 = fp8_backward_operands(fc2, z.device)
        if fp8 is not None:
            return fp8[0], fp8[1], out_dtype
    if type(fc2) is nn.Linear:
        return fc2.weight.to(dtype), None, out_dtype
    held = getattr(fc2, "held_weight", None)
    return (held, None, out_dtype) if held is not None and held.dtype == dtype else None


def unused_output_mlp(mlp: nn.Module, x: Tensor) -> Tensor:
    """``mlp(x)`` for a recomputation whose output nobody reads (:func:`output_unused`), traceable: ``fc1`` and
    the GELU as ``mlp`` computes them, ``fc2``'s product left out but not its backward (what the chunked
    recomputation of a compiled block calls; :class:`FrozenMLPFunction` does the same eagerly). ``mlp`` must
    satisfy :func:`input_grad_only`; where ``fc2``'s weight is a packed 4-bit one without a held copy, the whole
    ``mlp(x)`` is computed.

    Args:
        mlp: an :class:`~opentad.models.bricks.vit.FFN`.
        x: ``[..., C]``.

    Returns:
        ``[..., C]`` whose values are undefined and whose gradient to ``x`` is ``mlp``'s.
    """
    fc1, act, _ = mlp.layers[0]
    fc2 = mlp.layers[1]
    if isinstance(mlp, FrozenFP8MLP):  # fc1's product alone, the fused input gradient
        out = fp8_mlp(fc1, fc2, x, unused=True, made_only=True)
        if out is not None:
            return out
    z = act(fc1(x))
    operands = _fc2_operands(fc2, z)
    if operands is None:
        return mlp.layers[2](fc2(z))
    return _UnusedOutputLinear.apply(z, operands[0], operands[1], fc2.out_features, operands[2])


def recomputing_unused_output() -> bool:
    """Whether this thread is inside :func:`output_unused`."""
    return getattr(_STATE, "output_unused", False)
