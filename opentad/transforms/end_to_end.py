"""Frame transforms for end-to-end training, with mmaction2's semantics.

Upstream OpenTAD configs use mmaction2's transforms (``mmaction.Resize``,
...); these are this project's own, registered under both names, with the
same config keys, defaults and arithmetic.

Frame representation: ``results["imgs"]`` is a ``uint8`` tensor
``[T, 3, H, W]`` (RGB, as ``VideoDecode`` writes it) and
``results["img_shape"]`` is ``(H, W)``. A random transform draws its
parameters once per call (from :mod:`.rng`) and applies them to every frame
of the clip. ``FormatShape`` turns ``[T, 3, H, W]`` into ``[N, 3, T', H, W]``.

The crops (:mod:`.crops`) and the frame accessors :func:`get_imgs` /
:func:`set_imgs` (:mod:`.frames`) live in their own modules and are
importable from here as before.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Sequence, Tuple, Union

import numpy as np

from opentad.registry import TRANSFORMS

from . import rng
from .crops import CenterCrop, RandomCrop, RandomResizedCrop
from .formatting import require_key
from .frames import get_imgs, set_imgs
from .lazy_torchvision import TF, interpolation_mode

__all__ = ["Resize", "RandomResizedCrop", "RandomCrop", "CenterCrop", "Flip", "FormatShape", "get_imgs", "set_imgs"]

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


def rescale_size(w: int, h: int, scale: Union[float, Tuple[float, float]]) -> Tuple[int, int]:
    """New ``(w, h)`` keeping the aspect ratio (mmcv's ``rescale_size``).

    A number scales both sides. A pair ``(a, b)`` scales by the largest
    factor with the long side ``<= max(a, b)`` and the short side ``<= min(a,
    b)``; ``math.inf`` as the long bound makes it "short side = min".
    """
    if isinstance(scale, (int, float)):
        factor = float(scale)
    else:
        factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(w * factor + 0.5), int(h * factor + 0.5)


@TRANSFORMS.register_module(name=["Resize", "mmaction.Resize"])
class Resize:
    """Resize all frames.

    Reads ``imgs``; writes ``imgs``, ``img_shape``, ``keep_ratio`` and
    ``scale_factor`` (cumulative ``float32 [2]``, (w, h)).

    Args:
        scale: with ``keep_ratio``, a float factor, or ``(long, short)``
            bounds (see :func:`rescale_size`); ``-1`` in a pair means "short
            side = the other number" (``(-1, 182)``: short side 182). Without
            ``keep_ratio``, the output ``(w, h)``.
        keep_ratio: keep the aspect ratio.
        interpolation: nearest, bilinear or bicubic (no antialiasing, as
            OpenCV's resize that mmaction2 uses).

    Raises:
        ValueError: a non-positive scale or an unknown interpolation.
    """

    def __init__(
        self,
        *,
        scale: Union[float, Sequence[int]],
        keep_ratio: bool = True,
        interpolation: str = "bilinear",
    ):
        if isinstance(scale, (int, float)):
            if scale <= 0:
                raise ValueError(f"Resize: scale must be positive, got {scale}")
            self.scale: Union[float, Tuple[float, float]] = float(scale)
        else:
            scale = tuple(scale)
            if len(scale) != 2:
                raise ValueError(f"Resize: scale must be a number or a pair, got {scale!r}")
            self.scale = (math.inf, max(scale)) if min(scale) == -1 else scale
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f"Resize: unknown interpolation {interpolation!r}; valid: {list(_INTERPOLATIONS)}")
        if not keep_ratio and not isinstance(self.scale, tuple):
            raise ValueError("Resize: keep_ratio=False needs scale=(w, h)")
        self.keep_ratio = keep_ratio
        self.interpolation = interpolation

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        imgs = get_imgs(results, self)
        h, w = imgs.shape[-2:]
        new_w, new_h = rescale_size(w, h, self.scale) if self.keep_ratio else (int(self.scale[0]), int(self.scale[1]))
        if (new_h, new_w) != (h, w):
            imgs = TF.resize(imgs, [new_h, new_w], interpolation=interpolation_mode(self.interpolation), antialias=False)
        factor = np.array([new_w / w, new_h / h], dtype=np.float32)
        results["scale_factor"] = results.get("scale_factor", np.ones(2, dtype=np.float32)) * factor
        results["keep_ratio"] = self.keep_ratio
        set_imgs(results, imgs)
        return results

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(scale={self.scale}, keep_ratio={self.keep_ratio}, "
            f"interpolation={self.interpolation!r})"
        )


@TRANSFORMS.register_module(name=["Flip", "mmaction.Flip"])
class Flip:
    """Flip all frames with probability ``flip_ratio``.

    Writes ``imgs`` (flipped or not), ``flip`` (bool) and ``flip_direction``.

    Args:
        flip_ratio: the probability.
        direction: ``"horizontal"`` or ``"vertical"``.

    Raises:
        ValueError: another direction.
    """

    _DIRECTIONS = ("horizontal", "vertical")

    def __init__(self, *, flip_ratio: float = 0.5, direction: str = "horizontal"):
        if direction not in self._DIRECTIONS:
            raise ValueError(f"Flip: unknown direction {direction!r}; valid: {list(self._DIRECTIONS)}")
        self.flip_ratio = float(flip_ratio)
        self.direction = direction

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        imgs = get_imgs(results, self)
        flip = self.sample_flip()
        if flip:
            imgs = TF.horizontal_flip(imgs) if self.direction == "horizontal" else TF.vertical_flip(imgs)
        results["flip"] = flip
        results["flip_direction"] = self.direction
        set_imgs(results, imgs)
        return results

    def sample_flip(self) -> bool:
        """Draw whether one clip is flipped (shared with the batched augmentation)."""
        return rng.rand() < self.flip_ratio

    def __repr__(self) -> str:
        return f"{type(self).__name__}(flip_ratio={self.flip_ratio}, direction={self.direction!r})"


@TRANSFORMS.register_module(name=["FormatShape", "mmaction.FormatShape"])
class FormatShape:
    """Arrange frames for the backbone.

    ``"NCTHW"``: ``imgs [M, 3, H, W]`` with ``M = crops * num_clips *
    clip_len`` becomes ``[crops * num_clips, 3, clip_len, H, W]``.
    ``"NCHW"``: frames stay ``[M, 3, H, W]``. With ``collapse`` (needs one
    clip) the leading ``N = 1`` is dropped. Writes ``imgs`` and ``input_shape``.

    Args:
        input_format: ``"NCTHW"`` or ``"NCHW"``.
        collapse: drop the leading dim of size 1.

    Raises:
        ValueError: another format, or ``collapse`` with ``N != 1``.
    """

    _FORMATS = ("NCTHW", "NCHW")

    def __init__(self, *, input_format: str, collapse: bool = False):
        if input_format not in self._FORMATS:
            raise ValueError(f"FormatShape: unsupported input_format {input_format!r}; valid: {list(self._FORMATS)}")
        self.input_format = input_format
        self.collapse = collapse

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        imgs = get_imgs(results, self)
        if self.input_format == "NCTHW":
            require_key(results, "num_clips", self)
            require_key(results, "clip_len", self)
            num_clips, clip_len = int(results["num_clips"]), int(results["clip_len"])
            imgs = imgs.reshape((-1, num_clips, clip_len) + tuple(imgs.shape[1:]))
            imgs = imgs.permute(0, 1, 3, 2, 4, 5).reshape((-1, imgs.shape[3], clip_len) + tuple(imgs.shape[4:]))
        if self.collapse:
            if imgs.shape[0] != 1:
                raise ValueError(f"FormatShape: collapse needs one clip, got {imgs.shape[0]}")
            imgs = imgs[0]
        results["imgs"] = imgs
        results["input_shape"] = tuple(imgs.shape)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(input_format={self.input_format!r}, collapse={self.collapse})"
