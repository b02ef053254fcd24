"""OpenCV's 8-bit RGB <-> HSV conversions in torch, so hue jitter runs on any device.

:class:`~.photometric.ColorJitter` shifts hue as mmaction2 does: through
OpenCV's 8-bit HSV (``cv2.COLOR_RGB2HSV``: hue in ``[0, 180)``, saturation
and value in ``[0, 255]``). On CPU tensors it calls OpenCV; on other devices
(the batched GPU augmentation, :mod:`.batch_augment`) it calls
:func:`shift_hue`, which follows OpenCV's arithmetic:

* RGB -> HSV in 12-bit fixed point: ``V = max``, ``S = round(255 * (V -
  min) / V)`` and ``H = round(30 * sector_offset / (V - min))`` through
  OpenCV's two reciprocal tables (rounded to integers), negative hues
  wrapped by 180;
* HSV -> RGB in float32 as OpenCV's vectorised path (4.7 and later):
  ``h = H * (6 / 180)``, ``s = S / 255``, ``v = V / 255``; the sector
  ``trunc(h)`` and the fraction ``f`` pick ``v``, ``v (1 - s)``, ``v (1 -
  s f)`` or ``v (1 - s (1 - f))`` for each channel (the two brackets
  rounded once, like a fused multiply-add), then ``trunc(255 x)``.
  Older OpenCV builds round instead of truncating: a difference of at most
  one level.

``tests/transforms/test_hsv.py`` compares both directions with OpenCV
over every colour.
"""
from __future__ import annotations

import torch

__all__ = ["rgb_to_hsv", "hsv_to_rgb", "shift_hue"]

_SHIFT = 12  # OpenCV's hsv_shift
_HALF = 1 << (_SHIFT - 1)
# which of (v, p, q, t) feeds (r, g, b) in each of the six hue sectors
_SECTOR_RGB = ((0, 3, 1), (2, 0, 1), (1, 0, 3), (1, 2, 0), (3, 1, 0), (0, 1, 2))


def _reciprocal_table(numerator: float, scale: float, device: torch.device) -> torch.Tensor:
    """``round(numerator / (scale * i))`` for ``i`` in 1..255, 0 at ``i = 0`` (int32 ``[256]``)."""
    i = torch.arange(256, dtype=torch.float64, device=device)
    table = torch.round(numerator / (scale * i.clamp(min=1))).to(torch.int32)
    table[0] = 0
    return table


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``COLOR_RGB2HSV`` for 8-bit images.

    Args:
        rgb: ``uint8 [..., 3, H, W]`` (channel order R, G, B).

    Returns:
        ``uint8 [..., 3, H, W]``: H in ``[0, 180)``, S and V in ``[0, 255]``.

    Raises:
        TypeError: ``rgb`` is not uint8 with 3 channels at dim -3.
    """
    _check(rgb, "rgb_to_hsv")
    r, g, b = (rgb.select(-3, c).to(torch.int32) for c in range(3))  # products stay below 2**28
    v = torch.maximum(torch.maximum(r, g), b)
    diff = v - torch.minimum(torch.minimum(r, g), b)
    sdiv = _reciprocal_table(float(255 << _SHIFT), 1.0, rgb.device)
    hdiv = _reciprocal_table(float(180 << _SHIFT), 6.0, rgb.device)
    s = (diff * sdiv[v] + _HALF) >> _SHIFT
    h = torch.where(v == r, g - b, torch.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * hdiv[diff] + _HALF) >> _SHIFT
    h = torch.where(h < 0, h + 180, h)
    return torch.stack((h, s, v), dim=-3).to(torch.uint8)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``COLOR_HSV2RGB`` for 8-bit images (hue range 180).

    Args:
        hsv: ``uint8 [..., 3, H, W]`` as :func:`rgb_to_hsv` returns.

    Returns:
        ``uint8 [..., 3, H, W]`` RGB.

    Raises:
        TypeError: ``hsv`` is not uint8 with 3 channels at dim -3.
    """
    _check(hsv, "hsv_to_rgb")
    h = hsv.select(-3, 0).to(torch.float32) * _f32(6.0 / 180.0)
    s = hsv.select(-3, 1).to(torch.float32) * _f32(1.0 / 255.0)
    v = hsv.select(-3, 2).to(torch.float32) * _f32(1.0 / 255.0)
    whole = torch.trunc(h)
    f = h - whole
    sector = torch.remainder(whole.to(torch.int64), 6)
    # 1 - s*f and 1 - s*(1-f) rounded once, as OpenCV's fused multiply-adds
    q = (1.0 - s.double() * f.double()).float()
    t = (1.0 - s.double() * (1.0 - f).double()).float()
    table = torch.stack((v, v * (1.0 - s), v * q, v * t), dim=0)  # [4, ...]: v, p, q, t
    lookup = torch.tensor(_SECTOR_RGB, dtype=torch.int64, device=hsv.device)[sector]  # [..., H, W, 3]
    rgb = torch.stack([table.gather(0, lookup[..., c].unsqueeze(0)).squeeze(0) for c in range(3)], dim=-3)
    return torch.trunc(rgb * 255.0).clamp_(0, 255).to(torch.uint8)


def _f32(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float32)


def shift_hue(rgb: torch.Tensor, offset: int) -> torch.Tensor:
    """Add ``offset`` (mod 180) to the 8-bit OpenCV hue of ``uint8 [..., 3, H, W]`` RGB images.

    Raises:
        TypeError: see :func:`rgb_to_hsv`.
    """
    hsv = rgb_to_hsv(rgb)
    hue = (hsv.select(-3, 0).to(torch.int32) + int(offset)) % 180
    hsv = torch.stack((hue.to(torch.uint8), hsv.select(-3, 1), hsv.select(-3, 2)), dim=-3)
    return hsv_to_rgb(hsv)


def _check(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() < 3 or x.shape[-3] != 3:
        got = f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))} {getattr(x, 'dtype', '')}"
        raise TypeError(f"{name}: expected a uint8 tensor [..., 3, H, W], got {got}")
