"""How frames travel through the transforms: ``results["imgs"]``, a ``uint8`` tensor ``[T, 3, H, W]``.

:func:`get_imgs` reads and checks them, :func:`set_imgs` stores them with
their ``img_shape`` ``(H, W)``; every frame transform (:mod:`.end_to_end`,
:mod:`.crops`, :mod:`.photometric`) goes through these two.
"""
from __future__ import annotations

from typing import Any, Dict

import torch

from .formatting import require_key

__all__ = ["get_imgs", "set_imgs"]


def get_imgs(results: Dict[str, Any], transform: Any) -> torch.Tensor:
    """``results["imgs"]`` checked to be a ``uint8`` tensor ``[T, 3, H, W]``.

    Raises:
        KeyError: no ``imgs``.
        TypeError: ``imgs`` is not a 4-D uint8 tensor (names the transform).
    """
    require_key(results, "imgs", transform)
    imgs = results["imgs"]
    if not isinstance(imgs, torch.Tensor) or imgs.ndim != 4 or imgs.dtype != torch.uint8:
        got = f"{type(imgs).__name__} {tuple(getattr(imgs, 'shape', ()))} {getattr(imgs, 'dtype', '')}"
        raise TypeError(f"{type(transform).__name__}: imgs must be a uint8 tensor [T, 3, H, W], got {got}")
    return imgs


def set_imgs(results: Dict[str, Any], imgs: torch.Tensor) -> None:
    """Store frames ``[T, 3, H, W]`` and their ``img_shape``."""
    results["imgs"] = imgs
    results["img_shape"] = (int(imgs.shape[-2]), int(imgs.shape[-1]))
