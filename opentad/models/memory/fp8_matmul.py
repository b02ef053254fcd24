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
layers' ``frozen_matmul`` hook: :func:`set_fp8_products`.
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

from opentad.models.bricks.quant import frozen_weight_as, is_quantized, set_frozen_matmul

logger = logging.getLogger(__name__)

__all__ = ["FP8_MAX", "TINY", "MODES", "quantize_rows", "quantize_rows_reference", "fp8_weight", "fp8_frozen_linear",
           "fp8_frozen_linear_all", "fp8_supported", "quantize_fp8_weights", "check_mode", "set_fp8_products",
           "fp8_takes_every_product"]

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
        ``(q, scale)``: ``q`` ``[R, K]`` e4m3, contiguous, with ``q * scale ~ x``, ``scale`` ``[R, 1]`` float32
        ``= max(amax_r, TINY) / 448``; ``q = e4m3(clamp(x * (448 / max(amax_r, TINY)), -448, 448))``.
    """
    x32 = x.float().contiguous()  # a transposed weight too: ``q`` takes this layout
    amax = x32.abs().amax(dim=1, keepdim=True).clamp(min=TINY)
    inv = torch.full_like(amax, FP8_MAX) / amax
    q = (x32 * inv).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    # tensor by tensor: CUDA divides a tensor by a Python scalar as a product with its rounded reciprocal
    return q, amax / torch.full_like(amax, FP8_MAX)


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


def fp8_weight(layer: nn.Module, device: torch.device, transposed: bool = False) -> Tuple[Tensor, Tensor]:
    """The layer's weight in e4m3 with its row scales, quantized once and cached on the layer (``_fp8_cache``;
    ``_fp8_cache_t`` for the transposed copy the fp8 backward multiplies with).

    A new weight parameter or quantization state (loading quantized weights replaces them), an in-place copy
    into the parameter (``load_state_dict``) or another device quantizes again. (A change through
    ``weight.data`` bumps no version: call :func:`set_fp8_products` again after one.)

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


class _FP8FrozenMatmul(torch.autograd.Function):
    """``[R, K] -> [R, M]``: fp8 forward (module docstring); backward to ``x`` only, in bf16 or (``fp8_backward``)
    as ``e4m3(grad) @ e4m3(W)`` with row scales for the gradient and input-channel scales for ``W``."""

    @staticmethod
    def forward(ctx, x: Tensor, layer: nn.Module, bias: Optional[Tensor], fp8_backward: bool) -> Tensor:  # noqa: D102
        ctx.layer, ctx.in_dtype, ctx.fp8_backward = layer, x.dtype, fp8_backward
        weight_q, weight_scale = fp8_weight(layer, x.device)
        x_q, x_scale = quantize_rows(x)
        with torch.autocast(x.device.type, enabled=False):
            return torch._scaled_mm(x_q, weight_q.t(), scale_a=x_scale, scale_b=weight_scale, bias=bias,
                                    out_dtype=torch.bfloat16)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        with torch.autocast(grad.device.type, enabled=False):
            if ctx.fp8_backward:
                weight_q, weight_scale = fp8_weight(ctx.layer, grad.device, transposed=True)  # [K, M], [1, K]
                grad_q, grad_scale = quantize_rows(grad.to(torch.bfloat16).contiguous())
                grad_x = torch._scaled_mm(grad_q, weight_q.t(), scale_a=grad_scale, scale_b=weight_scale,
                                          out_dtype=torch.bfloat16)
            else:
                grad_x = grad.to(torch.bfloat16) @ frozen_weight_as(ctx.layer, torch.bfloat16)
        return grad_x.to(ctx.in_dtype), None, None, None


def _fp8_dims(in_features: int, out_features: int) -> bool:
    """Whether ``_scaled_mm`` takes a ``[*, in_features] @ [in_features, out_features]`` product (multiples of 16)."""
    return in_features % 16 == 0 and out_features % 16 == 0


def _fp8_linear(layer: nn.Module, x: Tensor, dtype: torch.dtype, fp8_backward: bool) -> Optional[Tensor]:
    if (dtype != torch.bfloat16 or not _fp8_dims(x.shape[-1], layer.out_features) or x.numel() == 0
            or not fp8_supported(x.device)):
        return None
    flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
    if flat.stride(1) != 1:
        flat = flat.contiguous()
    bias = layer.bias.to(torch.bfloat16) if layer.bias is not None else None
    out = _FP8FrozenMatmul.apply(flat, layer, bias, fp8_backward)
    return out.reshape(*x.shape[:-1], layer.out_features)


@torch.compiler.disable  # an autograd Function holding a module: one graph break in compiled blocks
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


@torch.compiler.disable
def fp8_frozen_linear_all(layer: nn.Module, x: Tensor, dtype: torch.dtype) -> Optional[Tensor]:
    """:func:`fp8_frozen_linear` whose backward product is fp8 too (``frozen_fp8="all"``); same Args and Returns."""
    return _fp8_linear(layer, x, dtype, fp8_backward=True)


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
