"""Boundary max pooling (AFSD): compiled CPU / CUDA op or pure-PyTorch fallback.

:func:`boundary_max_pooling` takes features ``[B, C, T]`` (``C`` even) and
segments ``[B, K, 4]`` = (start_left, start_right, end_left, end_right) and
returns ``[B, C, K]``: the first ``C/2`` channels are max-pooled over each
segment's start region, the others over its end region (details in
``boundary_pooling_torch.py``). The gradient goes to the first maximum.

Deviation from upstream: upstream's CUDA backward indexes the input with the
number of segments ``K`` as its length, which is only right when ``K == T``
(the AFSD case); here the backward is right for any ``K``.
"""

from __future__ import annotations

import torch
from torch import nn

from opentad.ops import select_device_op
from opentad.registry import ROI_HEADS

from .boundary_pooling_torch import boundary_pooling_backward_torch, boundary_pooling_forward_torch

__all__ = ["boundary_max_pooling", "BoundaryMaxPooling", "BoundaryMaxPoolingFunction"]

_COMPILED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class BoundaryMaxPoolingFunction(torch.autograd.Function):
    """Autograd function; ``apply(input, segments, compiled)``."""

    @staticmethod
    def forward(ctx, input, segments, compiled: bool):
        ctx.compiled = compiled
        ctx.length = input.shape[2]
        if compiled:
            ctx.save_for_backward(input, segments)
            return getattr(torch.ops.opentad, f"boundary_pooling_forward_{input.device.type}")(input, segments)
        output, where = boundary_pooling_forward_torch(input, segments)
        ctx.save_for_backward(where)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        grad_output = grad_output.contiguous()
        if ctx.compiled:
            input, segments = ctx.saved_tensors
            op = getattr(torch.ops.opentad, f"boundary_pooling_backward_{input.device.type}")
            return op(grad_output, input, segments), None, None
        (where,) = ctx.saved_tensors
        return boundary_pooling_backward_torch(grad_output, where, ctx.length), None, None


def boundary_max_pooling(input: torch.Tensor, segments: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Boundary max pooling.

    Args:
        input: ``[B, C, T]``, ``C`` even.
        segments: ``[B, K, 4]`` in feature positions, same dtype and device as
            ``input``; no gradient flows to them.
        backend: ``"auto"``, ``"compiled"`` or ``"torch"`` (see :mod:`opentad.ops`).

    Returns:
        ``[B, C, K]``.

    Raises:
        ValueError: bad shapes, an odd channel count, or mismatched dtype / device.
        ImportError: ``backend="compiled"`` and the op for this device is not built.
    """
    if input.dim() != 3 or input.shape[2] == 0 or input.shape[1] % 2:
        raise ValueError(
            f"boundary_max_pooling: input must be [B, C, T] with C even and T > 0, got {tuple(input.shape)}"
        )
    if segments.dim() != 3 or segments.shape[0] != input.shape[0] or segments.shape[2] != 4:
        raise ValueError(
            f"boundary_max_pooling: segments must be [B, K, 4] with B = {input.shape[0]}, got {tuple(segments.shape)}"
        )
    if segments.dtype != input.dtype or segments.device != input.device:
        raise ValueError(
            f"boundary_max_pooling: segments ({segments.dtype}, {segments.device}) must match input "
            f"({input.dtype}, {input.device})"
        )
    compiled = input.dtype in _COMPILED_DTYPES and select_device_op("boundary_pooling", input, backend)
    return BoundaryMaxPoolingFunction.apply(input.contiguous(), segments.detach().contiguous(), compiled)


@ROI_HEADS.register_module()
class BoundaryMaxPooling(nn.Module):
    """Module form of :func:`boundary_max_pooling` (upstream ``BoundaryMaxPooling``).

    Args:
        backend: ``"auto"``, ``"compiled"`` or ``"torch"``.
    """

    def __init__(self, *, backend: str = "auto") -> None:
        super().__init__()
        self.backend = backend

    def forward(self, input: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]``, ``[B, K, 4]`` -> ``[B, C, K]``."""
        return boundary_max_pooling(input, segments, backend=self.backend)
