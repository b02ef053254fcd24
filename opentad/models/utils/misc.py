"""Small tensor helpers shared by the temporal models."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["resize_mask", "apply_mask"]


def resize_mask(mask: torch.Tensor, length: int) -> torch.Tensor:
    """Resize a boolean validity mask to ``length`` steps by nearest sampling.

    Output step ``i`` takes input step ``floor(i * T / length)``, which is what
    a strided conv or pooling layer sees: after a stride-2 layer, step ``i``
    keeps the validity of input step ``2 i``.

    Args:
        mask: ``[B, T]`` bool.
        length: the new temporal length.

    Returns:
        ``[B, length]`` bool (the input itself when ``T == length``).

    Raises:
        ValueError: ``mask`` is not two-dimensional.
    """
    if mask.dim() != 2:
        raise ValueError(f"resize_mask expects a [B, T] mask, got shape {tuple(mask.shape)}")
    if mask.shape[-1] == length:
        return mask
    resized = F.interpolate(mask[:, None].float(), size=length, mode="nearest")
    return resized[:, 0].bool()


def apply_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the padded steps of ``x``.

    Args:
        x: ``[B, C, T]`` features.
        mask: ``[B, T]`` bool, True on valid steps.

    Returns:
        ``[B, C, T]``, ``x`` where the mask is True and 0 elsewhere (the mask
        carries no gradient).
    """
    return x * mask[:, None].to(x.dtype).detach()
