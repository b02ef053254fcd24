"""1D RoI align (upstream ``Align1D``): compiled CPU / CUDA op or pure-PyTorch fallback.

:func:`align1d` pools ``[B, C, T]`` features over rois ``[N, 3]`` =
``(batch index, start, end)`` into ``[N, C, pooled_size]``; gradients flow to
the features only, as upstream. The compiled op for the input's device
(``align1d_cpu`` / ``align1d_cuda``) is used when built; the fallback gives
the same results (see ``align_torch.py`` for the geometry).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from opentad.ops import select_device_op

from .align_torch import align1d_backward_torch, align1d_forward_torch

__all__ = ["align1d", "Align1DLayer"]

_COMPILED_DTYPES = (torch.float32, torch.float64)


def _use_compiled(input: torch.Tensor, backend: str) -> bool:
    if input.dtype not in _COMPILED_DTYPES:
        if backend == "compiled":
            raise TypeError(f"the compiled align1d op takes float32 or float64, got {input.dtype}")
        return False
    return select_device_op("align1d", input, backend)


class _Align1DFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, rois, pooled_size: int, sampling_ratio: int, compiled: bool):
        ctx.save_for_backward(rois)
        ctx.config = (pooled_size, sampling_ratio, tuple(input.shape), compiled)
        if compiled:
            op = getattr(torch.ops.opentad, f"align1d_forward_{input.device.type}")
            return op(input, rois, pooled_size, sampling_ratio)
        return align1d_forward_torch(input, rois, pooled_size, sampling_ratio)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (rois,) = ctx.saved_tensors
        pooled_size, sampling_ratio, shape, compiled = ctx.config
        if compiled:
            op = getattr(torch.ops.opentad, f"align1d_backward_{grad_output.device.type}")
            grad = op(grad_output.contiguous(), rois, pooled_size, *shape, sampling_ratio)
        else:
            grad = align1d_backward_torch(grad_output, rois, pooled_size, shape, sampling_ratio)
        return grad, None, None, None, None


def align1d(
    input: torch.Tensor, rois: torch.Tensor, pooled_size: int, sampling_ratio: int = 0, *, backend: str = "auto"
) -> torch.Tensor:
    """1D RoI align.

    Args:
        input: ``[B, C, T]`` features (float32 or float64 for the compiled op).
        rois: ``[N, 3]`` (batch index, start, end) in feature positions, same
            dtype and device as ``input``; no gradient flows to them.
        pooled_size: bins per roi (upstream ``feature_dim``).
        sampling_ratio: samples per bin; ``<= 0``: ``ceil(roi length / pooled_size)``.
        backend: ``"auto"``, ``"compiled"`` or ``"torch"`` (see :mod:`opentad.ops`).

    Returns:
        ``[N, C, pooled_size]``.

    Raises:
        ValueError: bad shapes, dtypes, devices, or a batch index outside ``[0, B)``.
        ImportError: ``backend="compiled"`` and the op for this device is not built.
    """
    _check_inputs(input, rois, pooled_size)
    compiled = _use_compiled(input, backend)
    return _Align1DFunction.apply(input, rois.detach(), int(pooled_size), int(sampling_ratio), compiled)


def _check_inputs(input: torch.Tensor, rois: torch.Tensor, pooled_size: int) -> None:
    if input.dim() != 3 or input.shape[2] == 0:
        raise ValueError(f"align1d: input must be [B, C, T] with T > 0, got {tuple(input.shape)}")
    if rois.dim() != 2 or rois.shape[1] != 3:
        raise ValueError(f"align1d: rois must be [N, 3] (batch index, start, end), got {tuple(rois.shape)}")
    if rois.dtype != input.dtype or rois.device != input.device:
        raise ValueError(
            f"align1d: rois ({rois.dtype}, {rois.device}) must match input ({input.dtype}, {input.device})"
        )
    if pooled_size <= 0:
        raise ValueError(f"align1d: pooled_size must be positive, got {pooled_size}")
    if rois.shape[0] > 0:
        low, high = rois[:, 0].long().aminmax()
        if low.item() < 0 or high.item() >= input.shape[0]:
            raise ValueError(
                f"align1d: roi batch indices must lie in [0, {input.shape[0]}), got {low.item()}..{high.item()}"
            )


class Align1DLayer(nn.Module):
    """Upstream's ``Align1DLayer(feature_dim, ratio=0)``, quirk included.

    As upstream (its "deterministic" trick), the features and rois are
    rounded to float16 and the op runs in float64; the output is cast back to
    the input dtype. Gradients take the same path (so they are rounded to
    float16 too). Rois beyond 2048 lose integer precision in float16.

    Args:
        feature_dim: bins per roi (``pooled_size``).
        ratio: samples per bin (``0``: adaptive).
        backend: ``"auto"``, ``"compiled"`` or ``"torch"``.
    """

    def __init__(self, feature_dim: int, ratio: int = 0, *, backend: str = "auto") -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.ratio = ratio
        self.backend = backend

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """``input [B, C, T]``, ``rois [N, 3]`` -> ``[N, C, feature_dim]`` (input dtype).

        Raises:
            ValueError: input and rois are on different devices, or bad shapes.
        """
        if input.device != rois.device:
            raise ValueError(f"Align1DLayer: features on {input.device} but rois on {rois.device}")
        out = align1d(input.half().double(), rois.half().double(), self.feature_dim, self.ratio, backend=self.backend)
        return out.to(input.dtype)

    def extra_repr(self) -> str:
        return f"feature_dim={self.feature_dim}, sampling_ratio={self.ratio}"
