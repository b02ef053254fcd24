"""Pixel normalisation of the frames the backbone wrapper receives.

Stands in for mmaction2's ``ActionDataPreprocessor`` (registered under that
name and ``mmaction.ActionDataPreprocessor``): the same config keys and the
same arithmetic, ``(x - mean) / std`` per channel in float32, optionally
after a BGR->RGB flip. ``mean``/``std`` are non-persistent buffers, so they
add no state-dict key (as in mmaction2).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from opentad.registry import BACKBONES

__all__ = ["ActionDataPreprocessor"]

_CHANNEL_AXIS = {"NCTHW": -4, "NCHW": -3}

#: float32 bytes normalised at a time when the result is another dtype
_SLICE_BYTES = 32 * 2**20


@BACKBONES.register_module(name=["ActionDataPreprocessor", "mmaction.ActionDataPreprocessor"])
class ActionDataPreprocessor(nn.Module):
    """Normalise batched frames.

    Args:
        mean: per-channel mean (e.g. ``[123.675, 116.28, 103.53]``), or None
            to only convert to float32.
        std: per-channel standard deviation; required with ``mean``.
        to_rgb: reverse the channel order first.
        format_shape: ``"NCTHW"`` (channels 4th from the end) or ``"NCHW"``.

    Raises:
        ValueError: unknown ``format_shape``; ``mean`` without ``std`` or
            lengths that differ.
    """

    def __init__(
        self,
        *,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        to_rgb: bool = False,
        format_shape: str = "NCHW",
    ):
        super().__init__()
        if format_shape not in _CHANNEL_AXIS:
            raise ValueError(f"ActionDataPreprocessor: format_shape={format_shape!r} not in {sorted(_CHANNEL_AXIS)}")
        if (mean is None) != (std is None) or (mean is not None and len(mean) != len(std)):
            raise ValueError(f"ActionDataPreprocessor: give mean and std of equal length, got mean={mean}, std={std}")
        self.format_shape = format_shape
        self.to_rgb = to_rgb
        self.channel_axis = _CHANNEL_AXIS[format_shape]
        trailing = (1,) * (-self.channel_axis - 1)
        if mean is not None:
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, *trailing), persistent=False)
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, *trailing), persistent=False)
        else:
            self.mean = None
            self.std = None

    def forward(self, frames: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Normalise ``[..., C, T, H, W]`` (NCTHW) or ``[..., C, H, W]`` (NCHW) frames.

        Args:
            frames: uint8 or float frames.
            dtype: dtype of the result. The arithmetic is float32 either way;
                for another dtype it runs in slices along the axis after the
                channels, so that no full-size float32 copy of the batch
                exists (768 frames x 2 at 160 px are 0.47 GB in float32).

        Returns:
            a tensor of the same shape in ``dtype``.

        Raises:
            ValueError: the channel axis does not match ``mean``'s length.
        """
        if frames.dim() < -self.channel_axis:
            raise ValueError(f"ActionDataPreprocessor: {self.format_shape} frames need >= {-self.channel_axis} dims")
        if self.to_rgb:
            frames = frames.flip(self.channel_axis)
        if self.mean is not None and frames.shape[self.channel_axis] != self.mean.shape[0]:
            raise ValueError(
                f"ActionDataPreprocessor: frames {tuple(frames.shape)} have {frames.shape[self.channel_axis]} "
                f"channels at axis {self.channel_axis}, mean/std have {self.mean.shape[0]}"
            )
        if dtype == torch.float32:
            return self._normalise(frames)
        out = torch.empty(frames.shape, dtype=dtype, device=frames.device)
        axis = self.channel_axis + 1
        step = max(1, frames.shape[axis] * _SLICE_BYTES // max(1, frames.numel() * 4))
        for start in range(0, frames.shape[axis], step):
            part = frames.narrow(axis, start, min(step, frames.shape[axis] - start))
            out.narrow(axis, start, part.shape[axis]).copy_(self._normalise(part))
        return out

    def _normalise(self, frames: Tensor) -> Tensor:
        frames = frames.to(torch.float32)
        if self.mean is None:
            return frames
        return (frames - self.mean) / self.std
