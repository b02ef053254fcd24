"""Photometric augmentation of clips: ``ColorJitter`` and ``ImgAug``.

Both read and write ``results["imgs"]`` (``uint8 [T, 3, H, W]``) and draw
their random parameters once per clip (every frame gets the same change).
Drawing (``ColorJitter.sample_factors``, ``ImgAug.sample_params``) is kept
apart from applying (``apply``, any device), so the batched augmentation
(:mod:`.batch_augment`) draws from the very same code.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from opentad.registry import TRANSFORMS

from . import rng
from .frames import get_imgs, set_imgs
from .hsv import shift_hue
from .lazy_torchvision import TF, interpolation_mode

__all__ = ["ColorJitter", "ImgAug"]

_GRAY = (0.2989, 0.587, 0.114)
_CHUNK = 64  # frames processed at once in float32, to bound memory


def _jitter_range(value: Union[float, Sequence[float]], bound: float, base: float, name: str) -> Tuple[float, float]:
    if isinstance(value, (int, float)):
        if not 0 <= value <= bound:
            raise ValueError(f"ColorJitter: {name}={value} must be in [0, {bound}]")
        return (base - value, base + value)
    lo, hi = float(value[0]), float(value[1])
    if not base - bound <= lo <= hi <= base + bound:
        raise ValueError(f"ColorJitter: {name}={tuple(value)} must lie within [{base - bound}, {base + bound}]")
    return (lo, hi)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma ``[T, 1, H, W]`` of float RGB ``[T, 3, H, W]``."""
    return (_GRAY[0] * x[:, 0] + _GRAY[1] * x[:, 1] + _GRAY[2] * x[:, 2]).unsqueeze(1)


def _shift_hue(imgs: torch.Tensor, offset: int) -> torch.Tensor:
    """Add ``offset`` (mod 180) to OpenCV's 8-bit hue of ``uint8 [T, 3, H, W]`` RGB frames.

    CPU tensors go through OpenCV; tensors on other devices through the torch
    port of the same arithmetic (:func:`.hsv.shift_hue`).
    """
    if imgs.device.type != "cpu":
        return shift_hue(imgs, offset)
    t, _, h, w = imgs.shape
    hwc = imgs.permute(0, 2, 3, 1).reshape(t * h, w, 3).contiguous().numpy()  # all frames as one tall image
    hsv = cv2.cvtColor(hwc, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + offset) % 180
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return torch.from_numpy(rgb).reshape(t, h, w, 3).permute(0, 3, 1, 2)


@TRANSFORMS.register_module(name=["ColorJitter", "mmaction.ColorJitter"])
class ColorJitter:
    """mmaction2's ColorJitter: brightness, contrast, saturation and hue.

    Per clip, factors ``b, c, s`` are drawn uniformly from their ranges and
    ``h`` from the hue range; the four operations run in an order drawn once
    when the transform is built (as mmaction2), in float32 without clipping
    in between:

    * brightness: ``x * b``;
    * contrast: ``c * x + (1 - c) * mean(gray(x))`` (mean over each frame);
    * saturation: ``s * x + (1 - s) * gray(x)``;
    * hue: clip to uint8, convert to OpenCV's 8-bit HSV (hue in [0, 180)),
      add ``int(h * 255)`` to the hue modulo 180 and convert back (OpenCV, as
      mmaction2; torchvision's float ``adjust_hue`` was about 6x slower).

    The result is clipped to [0, 255] and truncated to uint8. Gray is
    ``0.2989 R + 0.587 G + 0.114 B``.

    Args:
        brightness, contrast, saturation: ``v`` means ``(1 - v, 1 + v)``, or
            give ``(lo, hi)``; within [0, 2].
        hue: ``v`` means ``(-v, v)``, or ``(lo, hi)``; within [-0.5, 0.5].
    """

    def __init__(
        self,
        *,
        brightness: Union[float, Sequence[float]] = 0.5,
        contrast: Union[float, Sequence[float]] = 0.5,
        saturation: Union[float, Sequence[float]] = 0.5,
        hue: Union[float, Sequence[float]] = 0.1,
    ):
        self.brightness = _jitter_range(brightness, 1, 1, "brightness")
        self.contrast = _jitter_range(contrast, 1, 1, "contrast")
        self.saturation = _jitter_range(saturation, 1, 1, "saturation")
        self.hue = _jitter_range(hue, 0.5, 0, "hue")
        self.order: List[int] = torch.randperm(4).tolist()

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        imgs = get_imgs(results, self)
        factors = self.sample_factors()
        out = torch.empty_like(imgs)
        for start in range(0, imgs.shape[0], _CHUNK):
            out[start : start + _CHUNK] = self.apply(imgs[start : start + _CHUNK], *factors)
        set_imgs(results, out)
        return results

    def sample_factors(self) -> Tuple[float, float, float, float]:
        """Draw ``(b, c, s, h)`` for one clip (the draws the CPU and GPU paths share)."""
        b, c, s, h = (rng.uniform(*r) for r in (self.brightness, self.contrast, self.saturation, self.hue))
        return b, c, s, h

    def apply(self, imgs: torch.Tensor, b: float, c: float, s: float, h: float) -> torch.Tensor:
        """Jitter ``uint8 [T, 3, H, W]`` (on any device) with the given factors, in ``self.order``."""
        x = imgs.float()
        for op in self.order:
            if op == 0 and b != 1:
                x.mul_(b)
            elif op == 1 and c != 1:
                mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)  # before x changes in place
                x.mul_(c).add_((1 - c) * mean)
            elif op == 2 and s != 1:
                gray = _gray(x)
                x.mul_(s).add_((1 - s) * gray)
            elif op == 3 and h != 0:
                x = _shift_hue(x.clamp(0, 255).to(torch.uint8), int(h * 255)).float()
        return x.clamp_(0, 255).to(torch.uint8)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, hue={self.hue}, order={self.order})"
        )


# RandAugment as mmaction2's ImgAug(transforms="default") configures it:
# magnitude 9 of 10, two operations per clip.
_LEVEL = 0.9
_ENHANCE = 1.8 * _LEVEL + 0.1


def _sign() -> float:
    return 1.0 if rng.rand() < 0.5 else -1.0


def _affine(x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """torchvision's nearest-neighbour ``affine`` (black fill), computed once for all frames.

    The transform is applied to a map of source pixel numbers (exact in
    float32 for nearest sampling), then every frame gathers through it: the
    same result as ``TF.affine`` on the clip at a fraction of the cost. The
    map is made on ``x``'s device.
    """
    params = dict(angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, 0.0])
    params.update(kwargs)
    h, w = x.shape[-2:]
    numbers = torch.arange(1, h * w + 1, dtype=torch.float32, device=x.device).reshape(1, 1, h, w)
    source = TF.affine(numbers, **params, interpolation=interpolation_mode("nearest"), fill=0).reshape(-1).long()
    flat = x.reshape(x.shape[:-2] + (h * w,))
    out = flat[..., (source - 1).clamp(min=0)] * (source > 0).to(x.dtype)  # 0: outside the frame
    return out.reshape(x.shape)


def _cutout_centre(h: int, w: int) -> Tuple[float, float]:
    return rng.uniform(0, h), rng.uniform(0, w)


def _cutout(x: torch.Tensor, centre: Tuple[float, float]) -> torch.Tensor:
    h, w = x.shape[-2:]
    side = max(1, int(round(0.2 * _LEVEL * min(h, w))))
    cy, cx = centre
    top, left = max(0, int(cy - side / 2)), max(0, int(cx - side / 2))
    x = x.clone()
    x[..., top : top + side, left : left + side] = 128
    return x


class _Op(NamedTuple):
    """One RandAugment operation: ``sample(H, W)`` draws its parameter, ``apply(frames, parameter)`` uses it."""

    name: str
    apply: Callable[[torch.Tensor, Any], torch.Tensor]
    sample: Optional[Callable[[int, int], Any]] = None


def _fixed(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    return lambda x, _: fn(x)


def _draw_sign(h: int, w: int) -> float:
    return _sign()


_SPECS: List[_Op] = [
    _Op("ShearX", lambda x, sign: _affine(x, shear=[17.19 * _LEVEL * sign, 0.0]), _draw_sign),
    _Op("ShearY", lambda x, sign: _affine(x, shear=[0.0, 17.19 * _LEVEL * sign]), _draw_sign),
    _Op("TranslateX", lambda x, sign: _affine(x, translate=[int(round(0.2 * _LEVEL * sign * x.shape[-1])), 0]),
        _draw_sign),
    _Op("TranslateY", lambda x, sign: _affine(x, translate=[0, int(round(0.2 * _LEVEL * sign * x.shape[-2]))]),
        _draw_sign),
    _Op("Rotate", lambda x, sign: _affine(x, angle=30 * _LEVEL * sign), _draw_sign),
    _Op("Posterize", _fixed(lambda x: TF.posterize(x, bits=max(1, int(4 * _LEVEL))))),
    _Op("Solarize", _fixed(lambda x: TF.solarize(x, threshold=256 * _LEVEL))),
    _Op("EnhanceColor", _fixed(lambda x: TF.adjust_saturation(x, _ENHANCE))),
    _Op("EnhanceContrast", _fixed(lambda x: TF.adjust_contrast(x, _ENHANCE))),
    _Op("EnhanceBrightness", _fixed(lambda x: TF.adjust_brightness(x, _ENHANCE))),
    _Op("EnhanceSharpness", _fixed(lambda x: TF.adjust_sharpness(x, _ENHANCE))),
    _Op("Autocontrast", _fixed(lambda x: TF.autocontrast(x))),
    _Op("Equalize", _fixed(lambda x: TF.equalize(x))),
    _Op("Invert", _fixed(lambda x: TF.invert(x))),
    _Op("Cutout", _cutout, _cutout_centre),
]


def _draw_and_apply(op: _Op, x: torch.Tensor) -> torch.Tensor:
    param = op.sample(x.shape[-2], x.shape[-1]) if op.sample is not None else None
    return op.apply(x, param)


# name -> frames -> frames, drawing the operation's own parameter on each call
_OPS: List[Tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [
    (op.name, functools.partial(_draw_and_apply, op)) for op in _SPECS
]


@TRANSFORMS.register_module(name=["ImgAug", "mmaction.ImgAug"])
class ImgAug:
    """RandAugment on clips: our equivalent of mmaction2's imgaug-based ``ImgAug("default")``.

    Per clip, two different operations are drawn uniformly from the 15 below
    and applied, in this list order, with the same parameters to every frame
    (torchvision.transforms.v2 functional ops; magnitude 9/10):

    ShearX / ShearY (±15.5 degrees), TranslateX / TranslateY (±18% of the
    width / height), Rotate (±27 degrees) -- geometric ones fill with black,
    nearest-neighbour sampling; Posterize (3 bits); Solarize (invert pixels
    >= 230.4); EnhanceColor, EnhanceContrast, EnhanceBrightness,
    EnhanceSharpness (factor 1.72); Autocontrast; Equalize (each per frame);
    Invert; Cutout (one grey (128) square of 18% of the short side, centred
    uniformly, clipped at the border).

    Differences from upstream: imgaug is not used (unmaintained, breaks with
    numpy >= 1.24); the sign of each geometric op is drawn per clip, whereas
    mmaction2 fixes it once when the transform is built; imgaug's
    interpolation, PIL-style enhance and cutout placement details differ
    slightly.

    Args:
        transforms: only ``"default"``.

    Raises:
        ValueError: another value (imgaug augmenter lists are not supported).
    """

    def __init__(self, *, transforms: str = "default"):
        if transforms != "default":
            raise ValueError(f"ImgAug: only transforms='default' is supported, got {transforms!r}")
        self.transforms = transforms

    def __call__(self, results: Dict[str, Any]) -> Dict[str, Any]:
        imgs = get_imgs(results, self)
        params = self.sample_params(imgs.shape[-2], imgs.shape[-1])
        results["imgaug_ops"] = self.op_names(params)
        set_imgs(results, self.apply(imgs, params))
        return results

    @staticmethod
    def sample_params(h: int, w: int) -> List[Tuple[int, Any]]:
        """Draw two different operations and their parameters for an ``h x w`` clip.

        Returns:
            ``[(op_index, parameter), ...]`` in list order (the order they are applied).
        """
        first = rng.randint(0, len(_SPECS) - 1)
        second = rng.randint(0, len(_SPECS) - 2)
        second += second >= first  # two different ops
        chosen = sorted((first, second))
        return [(i, _SPECS[i].sample(h, w) if _SPECS[i].sample is not None else None) for i in chosen]

    @staticmethod
    def apply(imgs: torch.Tensor, params: Sequence[Tuple[int, Any]]) -> torch.Tensor:
        """Apply drawn operations to ``uint8 [..., 3, H, W]`` frames on any device."""
        for index, param in params:
            imgs = _SPECS[index].apply(imgs, param)
        return imgs

    @staticmethod
    def op_names(params: Sequence[Tuple[int, Any]]) -> List[str]:
        """The names of drawn operations."""
        return [_SPECS[i].name for i, _ in params]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(transforms={self.transforms!r})"
