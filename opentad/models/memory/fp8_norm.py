"""A frozen layer norm fused with the fp8 row quantization of the frozen product after it (``custom.fused_fp8_norms``).

In a frozen ViT block whose products are fp8 both ways (``frozen_fp8="all"``)
each layer norm's output is read by one frozen product only (``attn.qkv``
after ``norm1``, ``mlp``'s ``fc1`` after ``norm2``), which first quantizes its
rows to e4m3 (:func:`~.fp8_rows.quantize_rows`). ``layer_norm_fp8_rows``
computes the norm and quantizes its output in one pass over the rows: the
bf16 output is never written, and each input row is read once::

    layer_norm_fp8_rows(x, w, b, eps) = (*quantize_rows(bf16(layer_norm(x))), mean, rstd)
        x [R, C] -> q [R, C] e4m3, scale [R, 1] float32, mean [R, 1] float32, rstd [R, 1] float32

The product then multiplies ``q`` as it would the quantized bf16 output
(:class:`FP8NormProductFunction`; :mod:`.fp8_mlp` for ``fc1``). Backward is
unchanged: the product's fp8 input gradient, then the norm's own backward
from the saved mean and ``rstd`` (:func:`layer_norm_input_grad`, float32
inside, rounded to ``x``'s dtype as the bf16 norm's backward rounds).

The Triton kernel (:mod:`.fp8_norm_kernels`; CUDA, and the CPU under
``TRITON_INTERPRET=1``) takes bf16 rows of unit stride along C (C <= 16384)
and a bf16 weight and bias; elsewhere the reference: PyTorch's float32
``native_layer_norm``, bf16 rounding, :func:`~.fp8_rows.quantize_rows_reference`.
The kernel's mean and variance are two float32 sums where PyTorch sums by
Welford's method: a bf16 output can land one bf16 step from the eager
norm's, and its e4m3 value one step (tests/models/memory/fp8_norm_cases.py
states the error model). Approximate as ``frozen_fp8``; opt-in.

``opentad::layer_norm_fp8_rows`` is a PyTorch custom op (torch 2.4 and
later): a compiled block calls it as it is instead of tracing into it, where
Inductor would fuse the norm with the quantization itself, reading each row
twice (about 0.39 ms a call at ViT-g's rows, against a modelled 0.12 ms for
one pass: docs/benchmarks.md, run 33).
"""
from __future__ import annotations

import contextlib
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from opentad.models.memory.fp8_activations import CUSTOM_OPS, activation_parts
from opentad.models.memory.fp8_matmul import fp8_frozen_linear_all, input_grad_product, made_fp8_operands
from opentad.models.memory.fp8_rows import TINY, empty_rows, kernel_device, quantize_rows_reference, \
    scaled_rows_product
from opentad.models.memory.stream_norm import StreamLayerNorm

__all__ = ["layer_norm_fp8_rows", "layer_norm_rows_reference", "launch_layer_norm_rows", "layer_norm_input_grad",
           "hook_free", "frozen_layer_norm", "norm_operands", "FP8NormProductFunction", "fp8_norm_linear"]

BF16 = torch.bfloat16
NormRows = Tuple[Tensor, Tensor, Tensor, Tensor]


def _f32(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else t.float()


def layer_norm_rows_reference(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], eps: float) -> NormRows:
    """What :func:`layer_norm_fp8_rows` computes, in PyTorch ops: the norm in float32, rounded to bf16, quantized.

    Returns:
        ``(q [R, C] e4m3, scale [R, 1], mean [R, 1], rstd [R, 1])``, the last three float32.
    """
    y, mean, rstd = torch.native_layer_norm(x.float(), [x.shape[1]], _f32(weight), _f32(bias), eps)
    q, scale = quantize_rows_reference(y.to(BF16))
    return q, scale, mean.reshape(-1, 1), rstd.reshape(-1, 1)


def _check(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor]) -> None:
    """Raises ValueError unless ``x`` is ``[R, C]`` and ``weight``/``bias`` are ``[C]`` or None."""
    if x.dim() != 2:
        raise ValueError(f"layer_norm_fp8_rows: rows [R, C] expected, got shape {tuple(x.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (x.shape[1],):
            raise ValueError(f"layer_norm_fp8_rows: {name} of shape [{x.shape[1]}] expected, got {tuple(t.shape)}")


def _kernel_rows(x: Tensor) -> bool:
    """bf16 rows of unit stride along C <= 16384 (what the kernel reads)."""
    return x.dtype == BF16 and x.stride(1) == 1 and x.shape[1] <= 16384


def _kernel_parameters(weight: Optional[Tensor], bias: Optional[Tensor]) -> bool:
    """A contiguous bf16 weight and bias (what the kernel reads)."""
    return all(t is not None and t.dtype == BF16 and t.is_contiguous() for t in (weight, bias))


def _kernel_takes(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor]) -> bool:
    """Rows and parameters the kernel reads, on the kernel's device."""
    return kernel_device() == x.device.type and _kernel_rows(x) and _kernel_parameters(weight, bias)


def launch_layer_norm_rows(x: Tensor, weight: Tensor, bias: Tensor, eps: float, *,
                           native_casts: Optional[bool] = None, num_warps: Optional[int] = None) -> NormRows:
    """The Triton kernel of :func:`layer_norm_fp8_rows` with its launch settings (the op calls it with the
    defaults; the kernel benchmark and the tests with others).

    Args:
        x: ``[R, C]`` bf16 rows the kernel takes (unit stride along C, C <= 16384).
        weight, bias: ``[C]`` bf16, contiguous.
        eps: the norm's epsilon.
        native_casts: the GPU's own conversions (default on CUDA) or the integer arithmetic (the CPU interpreter's).
        num_warps: warps a program (default: :func:`~.fp8_activations.activation_parts`'s).

    Returns:
        ``(q [R, C] e4m3, scale [R, 1], mean [R, 1], rstd [R, 1])``.

    Raises:
        ValueError: rows or parameters the kernel does not take, ``native_casts`` off CUDA, or ``num_warps`` not
            a power of two.
    """
    from opentad.models.memory.fp8_norm_kernels import layer_norm_rows_kernel

    _check(x, weight, bias)
    native = x.is_cuda if native_casts is None else native_casts
    if not _kernel_rows(x) or (native and not x.is_cuda):
        raise ValueError(f"layer_norm_fp8_rows' kernel takes bf16 rows of unit stride along C <= 16384 (native casts "
                         f"on CUDA only); got {x.dtype} {tuple(x.shape)} strides {x.stride()} on {x.device}, "
                         f"native_casts={native}")
    if not _kernel_parameters(weight, bias):
        raise ValueError("layer_norm_fp8_rows' kernel takes a contiguous bf16 weight and bias")
    if num_warps is not None and (num_warps < 1 or num_warps & (num_warps - 1)):
        raise ValueError(f"num_warps must be a power of two, got {num_warps}")
    rows, cols = x.shape
    q, scale = empty_rows(rows, cols, x.device)
    mean, rstd = torch.empty_like(scale), torch.empty_like(scale)
    if rows:
        part, parts, warps = activation_parts(cols)
        with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
            layer_norm_rows_kernel[(rows,)](x, weight, bias, q.view(torch.uint8), scale, mean, rstd, cols,
                                            x.stride(0), float(eps), TINY, PART=part, PARTS=parts,
                                            EVEN=part * parts == cols, NATIVE=native,
                                            num_warps=warps if num_warps is None else num_warps)
    return q, scale, mean, rstd


def _layer_norm_rows(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], eps: float) -> NormRows:
    _check(x, weight, bias)
    if _kernel_takes(x, weight, bias):
        return launch_layer_norm_rows(x, weight, bias, eps)
    return layer_norm_rows_reference(x, weight, bias, eps)


def _fake(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], eps: float) -> NormRows:
    """The outputs' shapes and dtypes, for tracing (no data)."""
    _check(x, weight, bias)
    one = x.new_empty((x.shape[0], 1), dtype=torch.float32)
    return x.new_empty(x.shape, dtype=torch.float8_e4m3fn), one, torch.empty_like(one), torch.empty_like(one)


if CUSTOM_OPS:
    layer_norm_fp8_rows = torch.library.custom_op("opentad::layer_norm_fp8_rows", mutates_args=())(_layer_norm_rows)
    layer_norm_fp8_rows.register_fake(_fake)
else:  # torch < 2.4: a plain function (compiled blocks then trace into the reference)
    layer_norm_fp8_rows = _layer_norm_rows
layer_norm_fp8_rows.__doc__ = """``quantize_rows(bf16(layer_norm(x)))`` with the norm's mean and ``rstd``, one pass.

    Args:
        x: ``[R, C]``.
        weight, bias: ``[C]`` or None.
        eps: the norm's epsilon.

    Returns:
        ``(q [R, C] e4m3 contiguous, scale [R, 1], mean [R, 1], rstd [R, 1])``, the last three float32.

    Raises:
        ValueError: ``x`` not ``[R, C]``, or a weight or bias not ``[C]``.
    """


def layer_norm_input_grad(grad: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, weight: Optional[Tensor],
                          bias: Optional[Tensor]) -> Tensor:
    """The layer norm's input gradient from its output's: ``native_layer_norm_backward`` in float32, rounded to
    ``x``'s dtype (what the bf16 norm's backward computes; traceable).

    Args:
        grad: ``[R, C]`` the gradient of the norm's output.
        x: ``[R, C]`` the norm's input.
        mean, rstd: ``[R, 1]`` float32, as :func:`layer_norm_fp8_rows` gave them.
        weight, bias: ``[C]`` or None.

    Returns:
        ``[R, C]`` in ``x``'s dtype.
    """
    dx = torch.ops.aten.native_layer_norm_backward(grad.float(), x.float(), [x.shape[1]], mean, rstd, _f32(weight),
                                                   _f32(bias), [True, False, False])[0]
    return dx.to(x.dtype)


def hook_free(*modules: nn.Module) -> bool:
    """Whether none of ``modules`` has forward hooks or forward pre-hooks (a fused path that does not call a
    module would skip them). Traceable."""
    return not any(m._forward_hooks or m._forward_pre_hooks for m in modules)


def norm_operands(norm: nn.Module, x: Tensor) -> Optional[Tuple[Optional[Tensor], Optional[Tensor], float]]:
    """The operands of a norm the fused ops compute as it computes itself. Traceable.

    Args:
        norm: the norm before a frozen product.
        x: ``[..., C]`` its input.

    Returns:
        ``(weight, bias, eps)`` of a frozen :class:`torch.nn.LayerNorm` or
        :class:`~.stream_norm.StreamLayerNorm` (exactly those classes: a subclass may compute otherwise) over
        ``C``, without hooks, when ``x`` is bf16; else None (a norm that trains: its weight's gradient is not
        computed here).
    """
    if not frozen_layer_norm(norm) or tuple(norm.normalized_shape) != (x.shape[-1],):
        return None
    if x.dtype != BF16 or not hook_free(norm):
        return None
    return norm.weight, norm.bias, norm.eps


def frozen_layer_norm(norm: nn.Module) -> bool:
    """Whether ``norm`` is exactly a :class:`torch.nn.LayerNorm` or :class:`~.stream_norm.StreamLayerNorm` (a
    subclass may compute otherwise) none of whose parameters trains. Traceable."""
    return type(norm) in (nn.LayerNorm, StreamLayerNorm) and not any(p.requires_grad for p in norm.parameters())


class FP8NormProductFunction(torch.autograd.Function):
    """``[R, C] -> [R, M]``: a frozen layer norm, then a frozen fp8 product of its output (``frozen_fp8="all"``),
    the norm fused with the rows' quantization; from tensors alone (Dynamo traces it). Backward to ``x`` only:
    the product's fp8 input gradient (:func:`~.fp8_matmul.input_grad_product`), then the norm's backward.

    ``apply(x, norm_weight, norm_bias, eps, weight_q [M, C], weight_scale [1, M], bias [M] or None, back [C, M]
    e4m3, back_scale [1, C])``.
    """

    @staticmethod
    def forward(ctx, x, norm_weight, norm_bias, eps, weight_q, weight_scale, bias, back, back_scale):  # noqa: D102
        q, scale, mean, rstd = layer_norm_fp8_rows(x, norm_weight, norm_bias, eps)
        ctx.save_for_backward(x, mean, rstd, norm_weight, norm_bias, back, back_scale)
        return scaled_rows_product(q, scale, weight_q, weight_scale, bias)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        x, mean, rstd, norm_weight, norm_bias, back, back_scale = ctx.saved_tensors
        grad_norm = input_grad_product(grad, back, back_scale)
        return (layer_norm_input_grad(grad_norm, x, mean, rstd, norm_weight, norm_bias),) + (None,) * 8


def fp8_norm_linear(norm: nn.Module, layer: nn.Module, x: Tensor) -> Optional[Tensor]:
    """``layer(norm(x))`` through :class:`FP8NormProductFunction` where it applies (traceable): ``norm`` a frozen
    layer norm (:func:`norm_operands`), ``layer`` a frozen 4-bit layer with fp8 products both ways whose fp8
    weights were made before the step (:func:`~.fp8_matmul.made_fp8_operands`), multiplying in bf16, ``x`` bf16.

    Args:
        norm: the norm before ``layer``.
        layer: the layer that reads the norm's output only.
        x: ``[..., C]`` the norm's input.

    Returns:
        ``[..., M]`` bf16 (the layer's bias included), or None where it does not apply (the caller computes
        ``layer(norm(x))``).
    """
    operands = norm_operands(norm, x)
    if operands is None or layer.__dict__.get("frozen_matmul") is not fp8_frozen_linear_all or not hook_free(layer):
        return None
    if layer.bias is not None and layer.bias.requires_grad:  # its gradient is not computed here
        return None
    if layer.product_dtypes(x)[0] != BF16 or layer.out_features % 16 or x.shape[-1] % 16:
        return None
    weights = made_fp8_operands(layer, x, fp8_backward=True)
    if weights is None:
        return None
    flat = x.reshape(-1, x.shape[-1])
    if flat.stride(1) != 1:
        flat = flat.contiguous()
    weight_q, weight_scale, back, back_scale = weights
    bias = layer.bias.to(BF16) if layer.bias is not None else None
    out = FP8NormProductFunction.apply(flat, *operands, weight_q, weight_scale, bias, back, back_scale)
    return out.view(*x.shape[:-1], out.shape[-1])
