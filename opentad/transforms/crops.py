"""Crops with mmaction2's semantics, registered under both names (``CenterCrop``, ``mmaction.CenterCrop``).

Each reads ``imgs`` (:mod:`.frames`) and writes ``imgs``, ``img_shape`` and
``crop_bbox`` (``[left, top, right, bottom]``). A random crop draws its box
once per call (from :mod:`.rng`) for every frame of the clip; the batched
augmentation (:mod:`.batch_augment`) draws with :meth:`RandomResizedCrop.crop_box`.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Sequence, Tuple, Union

import numpy as np
import torch

from opentad.registry import TRANSFORMS

from . import rng
from .frames import get_imgs, set_imgs

__all__ = ["RandomResizedCrop", "RandomCrop", "CenterCrop"]


def _crop(results: Dict[str, Any], imgs: torch.Tensor, left: int, top: int, w: int, h: int) -> Dict[str, Any]:
    results["crop_bbox"] = np.array([left, top, left + w, top + h])
    set_imgs(results, imgs[..., top : top + h, left : left + w])
    return results


@TRANSFORMS.register_module(name=["RandomResizedCrop", "mmaction.RandomResizedCrop"])
class RandomResizedCrop:
    """Crop a random area and aspect ratio (resizing is left to a following ``Resize``).

    Up to 10 draws of an area fraction (uniform in ``area_range``) and an
    aspect ratio w/h (log-uniform in ``aspect_ratio_range``); the crop is
    ``w = round(sqrt(A*r))``, ``h = round(sqrt(A/r))``, placed uniformly, for
    the first draw that fits; if none fits, the centred square of the short side.

    Reads ``imgs``; writes ``imgs``, ``img_shape``, ``crop_bbox``
    (``[left, top, right, bottom]``).

    Args:
        area_range: ``(min, max)`` fraction of the frame area, in (0, 1].
        aspect_ratio_range: ``(min, max)`` of w/h.

    Raises:
        ValueError: ranges out of bounds.
    """

    def __init__(
        self,
        *,
        area_range: Sequence[float] = (0.08, 1.0),
        aspect_ratio_range: Sequence[float] = (3 / 4, 4 / 3),
    ):
        self.area_range = (float(area_range[0]), float(area_range[1]))
        self.aspect_ratio_range = (float(aspect_ratio_range[0]), float(aspect_ratio_range[1]))
        if not 0 < self.area_range[0] <= self.area_range[1] <= 1:
            raise ValueError(f"RandomResizedCrop: need 0 < area_range[0] <= area_range[1] <= 1, got {area_range}")
        if not 0 < self.aspect_ratio_range[0] <= self.aspect_ratio_range[1]:
            raise ValueError(f"RandomResizedCrop: bad aspect_ratio_range {aspect_ratio_range}")

    def crop_box(self, h: int, w: int, max_attempts: int = 10) -> Tuple[int, int, int, int]:
        """``(left, top, crop_w, crop_h)`` for a ``h x w`` frame."""
        for _ in range(max_attempts):
            ratio = rng.log_uniform(*self.aspect_ratio_range)
            area = rng.uniform(*self.area_range) * h * w
            crop_w, crop_h = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if crop_h <= h and crop_w <= w:
                return rng.randint(0, w - crop_w), rng.randint(0, h - crop_h), crop_w, crop_h
        size = min(h, w)
        return (w - size) // 2, (h - size) // 2, size, size

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        imgs = get_imgs(results, self)
        return _crop(results, imgs, *self.crop_box(imgs.shape[-2], imgs.shape[-1]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(area_range={self.area_range}, aspect_ratio_range={self.aspect_ratio_range})"


@TRANSFORMS.register_module(name=["RandomCrop", "mmaction.RandomCrop"])
class RandomCrop:
    """Crop a random ``size x size`` square.

    As mmaction2, the offset along a side longer than ``size`` is drawn from
    ``[0, side - size)`` (the last position is never drawn).

    Args:
        size: the square side.

    Raises:
        ValueError: the frames are smaller than ``size``.
    """

    def __init__(self, *, size: int):
        self.size = int(size)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        imgs = get_imgs(results, self)
        h, w = imgs.shape[-2:]
        if self.size > h or self.size > w:
            raise ValueError(f"RandomCrop: size {self.size} larger than frames {h}x{w} of {results.get('video_name')}")
        top = rng.randint(0, h - self.size - 1) if h > self.size else 0
        left = rng.randint(0, w - self.size - 1) if w > self.size else 0
        return _crop(results, imgs, left, top, self.size, self.size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


@TRANSFORMS.register_module(name=["CenterCrop", "mmaction.CenterCrop"])
class CenterCrop:
    """Crop the centre: ``left = (W - w) // 2``, ``top = (H - h) // 2``.

    Args:
        crop_size: ``s`` for ``s x s``, or ``(w, h)``.

    Raises:
        ValueError: the crop is larger than the frames.
    """

    def __init__(self, *, crop_size: Union[int, Sequence[int]]):
        self.crop_size = (int(crop_size), int(crop_size)) if isinstance(crop_size, int) else tuple(crop_size)

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        imgs = get_imgs(results, self)
        h, w = imgs.shape[-2:]
        crop_w, crop_h = self.crop_size
        if crop_w > w or crop_h > h:
            raise ValueError(
                f"CenterCrop: crop {crop_w}x{crop_h} larger than frames {w}x{h} of {results.get('video_name')}"
            )
        return _crop(results, imgs, (w - crop_w) // 2, (h - crop_h) // 2, crop_w, crop_h)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(crop_size={self.crop_size})"
