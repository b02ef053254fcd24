"""Frozen 4-bit linears' forward products in fp8 (opt-in, approximate: ``custom.frozen_fp8``).

A frozen NF4 layer computes ``x @ W.T + b`` in bf16 from its dequantized
weight. With this option its forward product runs on the fp8 tensor cores
instead (about 1.5x the bf16 rate of an H100 or H200 at a ViT-g's shapes)::

    W  [M, K] -> Wq fp8 e4m3 [M, K], sw [1, M]   once per weight (cached on the layer, not in the state dict)
    x  [R, K] -> xq fp8 e4m3 [R, K], sx [R, 1]   at every call (one Triton kernel on CUDA)
    y = (xq * sx) @ (Wq * sw).T + b               torch._scaled_mm: float32 accumulation, bf16 result

Each row of ``x`` and of ``W`` is scaled so that its largest magnitude maps
to 448, e4m3's largest value, and rounded to e4m3 (3 significand bits): a
relative error of at most 2^-4 per value in e4m3's normal range, an absolute
one of at most 2^-10 of the row's scale below it (e4m3 subnormals).
**Results change** (about 4% relative error per product on random data,
against 0.2% for bf16), so the option is off by default and its change in
synthetic mAP is reported (docs/qlora.md). The backward product stays bf16:
``grad_x = grad @ W`` with the layer's bf16 weight (held or dequantized), so
gradients see the fp8 forward's values but no fp8 rounding of their own.

Only layers whose two dims are multiples of 16 (``_scaled_mm``'s rule) and
calls in bf16 (autocast or ``compute_dtype``) take the fp8 path, on CUDA
devices of compute capability 8.9 or more and on the CPU (PyTorch's
reference kernel: for tests and the CPU's synthetic runs); everything else
keeps the bf16 product. The memory policy installs it through the 4-bit
layers' ``frozen_matmul`` hook: :func:`set_fp8_forward`.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import weakref
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from opentad.models.bricks.quant import frozen_weight_as

logger = logging.getLogger(__name__)

__all__ = ["FP8_MAX", "TINY", "quantize_rows", "quantize_rows_reference", "fp8_weight", "fp8_frozen_linear",
           "fp8_supported", "quantize_fp8_weights", "set_fp8_forward"]

FP8 = torch.float8_e4m3fn
#: e4m3's largest finite value: each row's largest magnitude is scaled to it
FP8_MAX = 448.0
#: the smallest row maximum used for a scale (an all-zero row quantizes to zeros, not NaN)
TINY = 2.0**-100


def quantize_rows_reference(x: Tensor) -> Tuple[Tensor, Tensor]:
    """Each row of ``x`` in fp8 e4m3 with its own float32 scale, in PyTorch ops (the CPU path and the tests' reference).

    Args:
        x: ``[R, K]`` floating point.

    Returns:
        ``(q, scale)``: ``q`` ``[R, K]`` e4m3 with ``q * scale ~ x``, ``scale`` ``[R, 1]`` float32
        ``= max(amax_r, TINY) / 448``; ``q = e4m3(clamp(x * (448 / max(amax_r, TINY)), -448, 448))``.
    """
    x32 = x.float()
    amax = x32.abs().amax(dim=1, keepdim=True).clamp(min=TINY)
    inv = torch.full_like(amax, FP8_MAX) / amax
    q = (x32 * inv).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return q, amax / FP8_MAX


@functools.lru_cache(maxsize=None)
def _kernel():
    """The Triton kernel and the device type it runs on, or None without Triton (imported on first use)."""
    try:
        from opentad.models.memory.fp8_kernels import quantize_rows_kernel
    except Exception:  # noqa: BLE001  (no Triton, or one that fails to import: PyTorch ops)
        return None
    return quantize_rows_kernel, ("cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda")


def quantize_rows(x: Tensor) -> Tuple[Tensor, Tensor]:
    """:func:`quantize_rows_reference` in one Triton kernel where it runs (CUDA; CPU under ``TRITON_INTERPRET=1``).

    Args:
        x: ``[R, K]`` with unit stride along K.

    Returns:
        ``(q [R, K] e4m3 contiguous, scale [R, 1] float32)``.
    """
    kernel = _kernel()
    if (kernel is None or x.device.type != kernel[1] or x.stride(1) != 1 or x.shape[1] > 16384
            or torch.compiler.is_compiling()):
        return quantize_rows_reference(x)
    rows, cols = x.shape
    q = torch.empty((rows, cols), dtype=FP8, device=x.device)
    scale = torch.empty((rows, 1), dtype=torch.float32, device=x.device)
    if rows:
        block = max(16, 1 << (cols - 1).bit_length())
        with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
            kernel[0][(rows,)](x, q.view(torch.uint8), scale, cols, x.stride(0), TINY, BLOCK=block,
                               num_warps=8 if block >= 4096 else 4)
    return q, scale


@functools.lru_cache(maxsize=None)
def fp8_supported(device: torch.device) -> bool:
    """Whether ``torch._scaled_mm`` with row scales runs on ``device`` (the CPU; CUDA of capability >= 8.9).

    Logs a warning, once per device, where it does not: the layers then keep their bf16 products.
    """
    ok = hasattr(torch, "_scaled_mm") and (
        device.type == "cpu" or (device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)))
    if not ok:
        logger.warning("frozen_fp8: %s has no fp8 matrix products (CUDA compute capability 8.9 or more, or the CPU); "
                       "the frozen 4-bit layers keep their bf16 products there", device)
    return ok


class _FP8Cache:
    """One layer's fp8 weight and the weight it was made from (by identity: weak references to the weight
    parameter and its quantization state, its version counter, the device). Never pickled or deep-copied
    with the layer: a copy starts empty and quantizes its own weight on first use."""

    __slots__ = ("weight", "state", "version", "device", "q", "scale")

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
        self.q, self.scale = q, scale


def fp8_weight(layer: nn.Module, device: torch.device) -> Tuple[Tensor, Tensor]:
    """The layer's weight in e4m3 with its row scales, quantized once and cached on the layer (``_fp8_cache``).

    A new weight parameter or quantization state (loading quantized weights replaces them), an in-place copy
    into the parameter (``load_state_dict``) or another device quantizes again. (A change through
    ``weight.data`` bumps no version: call :func:`set_fp8_forward` again after one.)

    Args:
        layer: a frozen 4-bit layer ``[M, K]``.
        device: where the copy is needed.

    Returns:
        ``(q [M, K] e4m3, scale [1, M] float32)``.
    """
    weight, state = layer.weight, getattr(layer.weight, "quant_state", None)
    cache = layer.__dict__.get("_fp8_cache")
    if cache is None:
        cache = layer.__dict__["_fp8_cache"] = _FP8Cache()
    if not cache.holds(weight, state, device):
        q, scale = quantize_rows_reference(frozen_weight_as(layer, torch.float32).to(device))
        cache.fill(weight, state, device, q, scale.reshape(1, -1).contiguous())
    return cache.q, cache.scale


class _FP8FrozenMatmul(torch.autograd.Function):
    """``[R, K] -> [R, M]``: fp8 forward (module docstring), bf16 backward to ``x`` only."""

    @staticmethod
    def forward(ctx, x: Tensor, layer: nn.Module, bias: Optional[Tensor]) -> Tensor:  # noqa: D102
        ctx.layer, ctx.in_dtype = layer, x.dtype
        weight_q, weight_scale = fp8_weight(layer, x.device)
        x_q, x_scale = quantize_rows(x)
        with torch.autocast(x.device.type, enabled=False):
            return torch._scaled_mm(x_q, weight_q.t(), scale_a=x_scale, scale_b=weight_scale, bias=bias,
                                    out_dtype=torch.bfloat16)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        weight = frozen_weight_as(ctx.layer, torch.bfloat16)
        with torch.autocast(grad.device.type, enabled=False):
            grad_x = grad.to(torch.bfloat16) @ weight
        return grad_x.to(ctx.in_dtype), None, None


@torch.compiler.disable  # an autograd Function holding a module: one graph break in compiled blocks
def fp8_frozen_linear(layer: nn.Module, x: Tensor, dtype: torch.dtype) -> Optional[Tensor]:
    """``x @ W.T + b`` of a frozen 4-bit ``layer`` with the fp8 forward product, or None where it does not apply.

    Args:
        layer: a frozen bitsandbytes ``Linear4bit`` (the hook's owner).
        x: ``[..., K]``.
        dtype: the dtype the layer computes in; only bfloat16 takes the fp8 path.

    Returns:
        ``[..., M]`` bf16, or None: not bf16, a dim not a multiple of 16, no rows, or a device without fp8
        products (the layer then computes its bf16 product).
    """
    rows_k = x.shape[-1]
    if (dtype != torch.bfloat16 or rows_k % 16 or layer.out_features % 16 or x.numel() == 0
            or not fp8_supported(x.device)):
        return None
    flat = x.reshape(-1, rows_k).to(torch.bfloat16)
    if flat.stride(1) != 1:
        flat = flat.contiguous()
    bias = layer.bias.to(torch.bfloat16) if layer.bias is not None else None
    out = _FP8FrozenMatmul.apply(flat, layer, bias)
    return out.reshape(*x.shape[:-1], layer.out_features)


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
        if layer.__dict__.get("frozen_matmul") is not fp8_frozen_linear:
            continue
        if layer.in_features % 16 or layer.out_features % 16:
            continue
        weight, scale = fp8_weight(layer, device)
        total += weight.numel() * weight.element_size() + scale.numel() * scale.element_size()
    return total


def set_fp8_forward(module: nn.Module, on: bool) -> int:
    """Install (``on``) or remove :func:`fp8_frozen_linear` on every frozen 4-bit layer of ``module``.

    Args:
        module: searched for layers with the ``frozen_matmul`` hook (``Linear4bitFrozen``).
        on: install, or remove the hook and the cached fp8 weights.

    Returns:
        the number of layers that now use the fp8 forward.
    """
    count = 0
    for layer in module.modules():
        if not hasattr(type(layer), "frozen_matmul"):
            continue
        layer.__dict__.pop("_fp8_cache", None)  # quantized again from the current weight at the next call
        if on and not any(p.requires_grad for p in layer.parameters()):
            layer.frozen_matmul = fp8_frozen_linear
            count += 1
        else:
            layer.__dict__.pop("frozen_matmul", None)
    return count
