"""Crop, resize and flip a batch of clips in one bilinear gather, a box and a flip per sample.

:func:`crop_resize_flip` computes, per sample, the source rows and columns
of each output pixel and their weights as ``F.interpolate(mode="bilinear",
align_corners=False)`` does on the cropped frames, and rounds the result to
uint8 (as torchvision's resize off the CPU); the frames are never cropped or
resized separately. :class:`~opentad.transforms.batch_augment.BatchClipAugment`
runs it chunk by chunk.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

__all__ = ["crop_resize_flip"]


def _taps(start: torch.Tensor, length: torch.Tensor, out: int, flip: torch.Tensor):
    """Source indices and weights of bilinear resizing ``length -> out`` per sample (``[B, out]`` each)."""
    scale = length.to(torch.float32) / out
    dst = torch.arange(out, dtype=torch.float32, device=start.device) + 0.5
    src = (scale[:, None] * dst[None, :] - 0.5).clamp_(min=0)
    last = length[:, None] - 1
    i0 = torch.minimum(src.to(torch.int64), last)
    i1 = torch.minimum(i0 + 1, last)
    w1 = (src - i0.to(torch.float32)).clamp_(0, 1)
    taps = [i0 + start[:, None], i1 + start[:, None], 1.0 - w1, w1]
    if bool(flip.any()):
        taps = [torch.where(flip[:, None], t.flip(1), t) for t in taps]
    return taps


def crop_resize_flip(
    frames: torch.Tensor,
    boxes: torch.Tensor,
    size: Tuple[int, int],
    hflip: torch.Tensor,
    vflip: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Crop a box per sample, resize it bilinearly to ``size``, flip; all in one gather.

    Args:
        frames: ``uint8 [B, M, H, W]`` (``M`` frames and channels of a sample).
        boxes: ``int64 [B, 4]``: ``(left, top, width, height)`` per sample.
        size: ``(out_h, out_w)``.
        hflip, vflip: ``bool [B]``: flip horizontally / vertically.

    Returns:
        ``uint8 [B, M, out_h, out_w]``.
    """
    b, m, h, w = frames.shape
    out_h, out_w = size
    boxes = boxes.to(device=frames.device, dtype=torch.int64)
    no_flip = torch.zeros(b, dtype=torch.bool, device=frames.device)
    y0, y1, wy0, wy1 = _taps(boxes[:, 1], boxes[:, 3], out_h, no_flip if vflip is None else vflip.to(frames.device))
    x0, x1, wx0, wx1 = _taps(boxes[:, 0], boxes[:, 2], out_w, hflip.to(frames.device))
    flat = frames.reshape(b * m * h, w)
    plane = (torch.arange(b, device=frames.device)[:, None] * m + torch.arange(m, device=frames.device)[None]) * h

    def rows(y: torch.Tensor) -> torch.Tensor:  # [B, M * out_h, W]
        return flat.index_select(0, (plane[:, :, None] + y[:, None, :]).reshape(-1)).view(b, m * out_h, w)

    def cols(x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:  # [B, M, out_h, out_w] float
        return torch.gather(x, 2, xi[:, None, :].expand(b, m * out_h, out_w)).view(b, m, out_h, out_w).float()

    wx0, wx1 = wx0[:, None, None, :], wx1[:, None, None, :]
    top, bottom = rows(y0), rows(y1)
    top = cols(top, x0) * wx0 + cols(top, x1) * wx1
    bottom = cols(bottom, x0) * wx0 + cols(bottom, x1) * wx1
    out = top * wy0[:, None, :, None] + bottom * wy1[:, None, :, None]
    return out.round_().clamp_(0, 255).to(torch.uint8)
