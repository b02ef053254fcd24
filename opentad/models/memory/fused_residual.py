"""The adapters' scaled residual ``up * gamma + x`` in one kernel, with eager PyTorch's rounding.

An AdaTAD adapter ends with ``up_proj(h) * gamma + x``: ``up`` and ``x`` are
``[B, N, C]`` in the stream's bf16, ``gamma`` a float32 parameter of shape
``[1]``. Type promotion makes the product and the sum float32 tensors, which
the memory policy's stream then casts back to bf16. Eagerly that is three
kernels and about 22 bytes moved per element forward (the product reads 2
and writes 4, the sum reads 6 and writes 4, the cast reads 4 and writes 2),
and about 40 in backward, in every block of a ViT-g step::

    eager:  t = up * gamma (float32) -> s = t + x (float32) -> bf16(s)
    fused:  bf16(fl32(fl32(up * gamma) + x))      one kernel, 6 bytes per element

The fused kernel (Triton) computes the same float32 product and float32 sum,
each rounded to float32 (floating-point contraction into an FMA is switched
off), and rounds the sum to bf16 to nearest, ties to even, as the cast does.
Its backward gives what autograd gives the eager expression:

* ``x``: the incoming bf16 gradient itself (eager: bf16 -> float32 -> bf16, exact);
* ``up``: ``bf16(fl32(grad * gamma))`` (eager: the float32 product, cast);
* ``gamma``: the float32 products ``grad * up`` (exact: 8-bit by 8-bit
  significands) summed by the same ``sum_to_size`` reduction eager uses.

So the result and every gradient are bitwise those of the eager expression
followed by the stream's cast (NaN payloads aside); the backward moves about
14 bytes per element. An incoming gradient that is not contiguous (the last
block's, from the wrapper's pooling) takes eager's formulas, whose layouts
and reduction order follow it. The gradients carry no graph: a second
derivative through them is an error (``once_differentiable``). Anything else
(no Triton, not CUDA, not bf16, shapes that broadcast, strided tensors,
``torch.compile`` tracing) runs the eager expression. The memory policy installs it (``custom.fused_residual``,
with ``frozen_dtype``): :func:`set_fused_residuals`.

With ``TRITON_INTERPRET=1`` set before the first call, the kernels run in
Triton's interpreter on CPU tensors (the tests use this).
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Iterable, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = ["fused_scaled_residual", "set_fused_residuals", "fusable"]

#: elements per Triton program
_BLOCK = 2048


@functools.lru_cache(maxsize=None)
def _kernels() -> Optional[Tuple[Any, Any, str]]:
    """``(forward kernel, backward kernel, device type)``, or None without Triton (imported on first use)."""
    try:
        from opentad.models.memory import fused_residual_kernels as kernels
    except Exception:  # noqa: BLE001  (no Triton, or one that fails to import: the eager path)
        return None
    device = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"
    return kernels.forward_kernel, kernels.backward_kernel, device


def _grid(n: int) -> Tuple[int]:
    return ((n + _BLOCK - 1) // _BLOCK,)


def _launch(device: torch.device):
    """The CUDA device of the tensors as the current one while a kernel is launched (Triton uses the current)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


class _ScaledResidual(torch.autograd.Function):
    """``bf16(up * gamma + x)`` with eager's float32 arithmetic; see the module docstring."""

    @staticmethod
    def forward(ctx, up: Tensor, gamma: Tensor, x: Tensor) -> Tensor:  # noqa: D102
        forward_kernel, _, _ = _kernels()
        out = torch.empty_like(x)
        with _launch(x.device):
            forward_kernel[_grid(x.numel())](up, gamma, x, out, x.numel(), BLOCK=_BLOCK, enable_fp_fusion=False)
        ctx.save_for_backward(up if ctx.needs_input_grad[1] else None, gamma)  # up: for gamma's gradient only
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # noqa: D102
        up, gamma = ctx.saved_tensors
        want_up, want_gamma, want_x = ctx.needs_input_grad
        if not grad.is_contiguous():
            # eager's gradients take the incoming gradient's layout, and gamma's sum its order: eager's formulas
            # (the last block's gradient arrives strided from the wrapper's pooling)
            grad32 = grad.float()
            return ((grad32 * gamma).to(grad.dtype) if want_up else None,
                    (grad32 * up).sum_to_size(gamma.shape) if want_gamma else None, grad if want_x else None)
        grad_up = torch.empty_like(grad) if want_up else None
        prod = torch.empty(grad.shape, dtype=torch.float32, device=grad.device) if want_gamma else None
        if want_up or want_gamma:
            _, backward_kernel, _ = _kernels()
            with _launch(grad.device):
                backward_kernel[_grid(grad.numel())](
                    grad, up if want_gamma else grad, gamma, grad_up if want_up else grad,
                    prod if want_gamma else grad, grad.numel(),
                    WANT_UP=want_up, WANT_GAMMA=want_gamma, BLOCK=_BLOCK, enable_fp_fusion=False,
                )
        grad_gamma = prod.sum_to_size(gamma.shape) if want_gamma else None
        return grad_up, grad_gamma, (grad if want_x else None)


def fusable(up: Tensor, gamma: Tensor, x: Tensor) -> bool:
    """Whether :func:`fused_scaled_residual` runs the kernel for these tensors (else the eager expression).

    Args:
        up, gamma, x: as :func:`fused_scaled_residual` takes them.

    Returns:
        True for bf16 ``up`` and ``x`` of one shape, both contiguous, and a float32 ``gamma`` of shape ``[1]``
        (a 0-dim ``gamma`` would not promote the eager expression to float32), all on the kernels' device
        (CUDA; the CPU under Triton's interpreter), outside ``torch.compile`` tracing.
    """
    kernels = _kernels()
    if kernels is None or torch.compiler.is_compiling():
        return False
    device = kernels[2]
    return (
        up.dtype == x.dtype == torch.bfloat16 and gamma.dtype == torch.float32 and tuple(gamma.shape) == (1,)
        and up.shape == x.shape and up.device == x.device == gamma.device and x.device.type == device
        and up.is_contiguous() and x.is_contiguous()
    )


def fused_scaled_residual(up: Tensor, gamma: Tensor, x: Tensor) -> Tensor:
    """``up * gamma + x``, rounded to ``x``'s bf16 in one kernel when :func:`fusable`.

    Args:
        up: ``[B, N, C]`` bf16 (the up projection's output).
        gamma: ``[1]`` float32.
        x: ``[B, N, C]`` bf16 (the adapter's input).

    Returns:
        ``[B, N, C]``: bf16 when fused (bitwise the eager float32 result cast to bf16), else the eager
        expression's result (float32 for these dtypes).
    """
    if fusable(up, gamma, x):
        return _ScaledResidual.apply(up, gamma, x)
    return up * gamma + x


def set_fused_residuals(modules: Iterable[nn.Module], on: bool) -> int:
    """Make each residual adapter among ``modules`` use :func:`fused_scaled_residual` (``on``) or its own.

    Args:
        modules: e.g. ``backbone.modules()``; only modules with the adapters' hook (``residual_op``) and a
            residual (``residual`` True: AdaTAD's projection adapters) are touched.
        on: install the fused residual, or remove it.

    Returns:
        the number of adapters that now use the fused residual.
    """
    count = 0
    for module in modules:
        if not hasattr(type(module), "residual_op") or getattr(module, "residual", False) is not True:
            continue
        if on:
            module.residual_op = fused_scaled_residual
            count += 1
        else:
            module.__dict__.pop("residual_op", None)
    return count
