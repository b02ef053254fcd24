"""The end-to-end training augmentation applied to whole batches on the model's device.

:class:`BatchClipAugment` takes the same transform configs as the CPU
pipeline (``mmaction.RandomResizedCrop``, ``mmaction.Resize`` to a fixed
size, ``mmaction.Flip``, ``mmaction.ImgAug``, ``mmaction.ColorJitter``),
builds them, and per sample draws their parameters with *their own*
sampling methods (``crop_box``, ``sample_flip``, ``sample_params``,
``sample_factors``), in pipeline order, so both paths draw from the same
distributions. It applies them to ``uint8 [B, N, C, T, H, W]`` clips:

* crop + resize + flip in one batched bilinear gather: per sample the
  source rows and columns of each output pixel and their weights, computed
  as ``F.interpolate(mode="bilinear", align_corners=False)`` does on the
  cropped frames (output rounded to uint8, as torchvision's resize off the
  CPU); the frames are never cropped or resized separately
  (:func:`~opentad.transforms.crop_resize.crop_resize_flip`, importable from
  here as before);
* ImgAug and ColorJitter through the CPU transforms' ``apply`` methods, on
  the ``N * T`` frames of a sample (hue through :mod:`.hsv` off the CPU).

Both steps run ``chunk_frames`` frames at a time (128 by default) into a uint8
result, so the float32 temporaries never exist for the whole clip: on an H200
a batch of two 768-frame THUMOS samples (182x323 in, 160x160 out) peaks at
600 MiB above its input in 128-frame chunks against 2,740 MiB whole, for 36
against 27 ms (64-frame chunks: 384 MiB, 61 ms; ``tools/benchmark_augment.py``,
docs/data_pipeline.md). ``tests/transforms/test_batch_augment.py`` checks the pixels
and the drop on a small clip.

It draws from a private copy of torch's generator, seeded for each batch
from the run's seed (``torch.initial_seed()``, or ``seed``), the distributed
rank and the number of batches drawn so far, so ranks do not repeat each
other's augmentations, the run's own random stream is left untouched, and a
resumed run continues the same sequence (the count is in the checkpoint). ``AugmentDataPreprocessor``
(:mod:`opentad.models.backbones.augment_preprocessor`) applies it in the
training step.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from opentad.registry import TRANSFORMS

from .crop_resize import crop_resize_flip
from .crops import CenterCrop, RandomResizedCrop
from .end_to_end import Flip, Resize
from .formatting import Compose
from .photometric import ColorJitter, ImgAug

__all__ = ["BatchClipAugment", "ClipParams", "crop_resize_flip"]

_ORDER = "[RandomResizedCrop | CenterCrop] -> [Resize(keep_ratio=False)] -> [Flip] -> (ImgAug | ColorJitter)*"


class ClipParams(NamedTuple):
    """Parameters drawn for one sample.

    Attributes:
        box: ``(left, top, width, height)`` of the crop in input pixels.
        flip: whether the sample is flipped.
        photometric: one entry per ImgAug / ColorJitter, in order.
    """

    box: Tuple[int, int, int, int]
    flip: bool
    photometric: List[Any]


def _split(transforms: Sequence[Any]):
    """``(crop, resize, flip, photometric)`` from a transform list in the supported order.

    Raises:
        ValueError: a transform out of order, of an unsupported type or setting.
    """
    crop = resize = flip = None
    photometric: List[Any] = []
    stage = 0  # 0: crop may come, 1: resize, 2: flip, 3: photometric only
    for t in transforms:
        name = type(t).__name__
        if isinstance(t, (RandomResizedCrop, CenterCrop)) and stage == 0:
            crop, stage = t, 1
        elif isinstance(t, Resize) and stage <= 1:
            if t.keep_ratio or t.interpolation != "bilinear":
                raise ValueError(f"BatchClipAugment: Resize needs keep_ratio=False and bilinear, got {t!r}")
            resize, stage = t, 2
        elif isinstance(t, Flip) and stage <= 2:
            flip, stage = t, 3
        elif isinstance(t, (ImgAug, ColorJitter)):
            photometric.append(t)
            stage = 3
        else:
            raise ValueError(f"BatchClipAugment: {name} not supported here or out of order; supported order: {_ORDER}")
    if isinstance(crop, RandomResizedCrop) and resize is None:
        raise ValueError("BatchClipAugment: RandomResizedCrop needs a following fixed-size Resize to batch the clips")
    return crop, resize, flip, photometric


@TRANSFORMS.register_module()
class BatchClipAugment:
    """Apply a CPU augmentation pipeline to batched clips on their device (see the module docstring).

    Args:
        transforms: transform configs (or built transforms) in the order
            ``[RandomResizedCrop | CenterCrop] -> [Resize(keep_ratio=False)]
            -> [Flip] -> (ImgAug | ColorJitter)*``.
        seed: base seed of the private generator; None uses ``torch.initial_seed()``.
        chunk_frames: frames augmented at once (the float32 temporaries exist for
            this many frames only; the result does not depend on it).

    Raises:
        ValueError: a transform of another type, out of order, or a
            RandomResizedCrop without a fixed-size Resize after it; ``chunk_frames`` < 1.
    """

    def __init__(
        self,
        *,
        transforms: Sequence[Union[Mapping[str, Any], Any]],
        seed: Optional[int] = None,
        chunk_frames: int = 128,
    ):
        if chunk_frames < 1:
            raise ValueError(f"BatchClipAugment: chunk_frames must be >= 1, got {chunk_frames}")
        self.transforms = Compose(transforms).transforms
        self.crop, self.resize, self.flip, self.photometric = _split(self.transforms)
        self.seed = seed
        self.chunk_frames = int(chunk_frames)
        self.draws = 0  # batches drawn so far: with the seed and the rank, it fixes the next draw

    def output_size(self, h: int, w: int) -> Tuple[int, int]:
        """``(out_h, out_w)`` for ``h x w`` inputs."""
        if self.resize is not None:
            return int(self.resize.scale[1]), int(self.resize.scale[0])
        if isinstance(self.crop, CenterCrop):
            return int(self.crop.crop_size[1]), int(self.crop.crop_size[0])
        return h, w

    def _box(self, h: int, w: int) -> Tuple[int, int, int, int]:
        if isinstance(self.crop, RandomResizedCrop):
            return self.crop.crop_box(h, w)
        if isinstance(self.crop, CenterCrop):
            crop_w, crop_h = self.crop.crop_size
            if crop_w > w or crop_h > h:
                raise ValueError(f"BatchClipAugment: CenterCrop {crop_w}x{crop_h} larger than frames {w}x{h}")
            return (w - crop_w) // 2, (h - crop_h) // 2, crop_w, crop_h
        return 0, 0, w, h

    def sample_params(self, batch_size: int, h: int, w: int) -> List[ClipParams]:
        """Draw every sample's parameters from torch's default generator, in pipeline order."""
        out_h, out_w = self.output_size(h, w)
        params = []
        for _ in range(batch_size):
            box = self._box(h, w)
            flip = self.flip.sample_flip() if self.flip is not None else False
            photo = [
                t.sample_params(out_h, out_w) if isinstance(t, ImgAug) else t.sample_factors() for t in self.photometric
            ]
            params.append(ClipParams(box=tuple(int(v) for v in box), flip=bool(flip), photometric=photo))
        return params

    def _stream_seed(self, draw: int) -> int:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        rank = torch.distributed.get_rank() if distributed else 0
        base = torch.initial_seed() if self.seed is None else int(self.seed)
        entropy = [base % 2**63, rank, 0xBA7C, draw]
        return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] % 2**63)

    @contextlib.contextmanager
    def _private_stream(self) -> Iterator[None]:
        """Torch's generator seeded for the next draw; restored afterwards. Counter-based, so a
        checkpoint needs only :attr:`draws` (the same on every rank) to continue exactly."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._stream_seed(self.draws))
            self.draws += 1
            yield

    def state_dict(self) -> Dict[str, int]:
        """What a checkpoint keeps: ``{"draws": n}``."""
        return {"draws": self.draws}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue after ``state["draws"]`` draws.

        Raises:
            KeyError: ``state`` has no ``draws`` entry.
        """
        self.draws = int(state["draws"])

    def draw(self, batch_size: int, h: int, w: int) -> List[ClipParams]:
        """:meth:`sample_params` from the private generator (torch's default one is left as it was)."""
        with self._private_stream():
            return self.sample_params(batch_size, h, w)

    def apply(self, frames: torch.Tensor, params: Sequence[ClipParams]) -> torch.Tensor:
        """Augment ``uint8 [B, N, C, T, H, W]`` clips with drawn parameters.

        Returns:
            ``uint8 [B, N, C, T, out_h, out_w]`` on the same device.

        Raises:
            TypeError: ``frames`` is not a 6-D uint8 tensor with 3 channels.
            ValueError: ``params`` does not have one entry per sample.
        """
        is_clips = isinstance(frames, torch.Tensor) and frames.dim() == 6 and frames.shape[2] == 3
        if not is_clips or frames.dtype != torch.uint8:
            got = f"{type(frames).__name__} {tuple(getattr(frames, 'shape', ()))} {getattr(frames, 'dtype', '')}"
            raise TypeError(f"BatchClipAugment: frames must be uint8 [B, N, 3, T, H, W], got {got}")
        b, n, c, t, h, w = frames.shape
        if len(params) != b:
            raise ValueError(f"BatchClipAugment: {len(params)} parameter sets for a batch of {b}")
        out_h, out_w = self.output_size(h, w)
        boxes = torch.tensor([p.box for p in params], dtype=torch.int64)
        flips = torch.tensor([p.flip for p in params], dtype=torch.bool)
        vertical = self.flip is not None and self.flip.direction == "vertical"
        hflip, vflip = (torch.zeros_like(flips), flips) if vertical else (flips, torch.zeros_like(flips))
        whole = bool((boxes == torch.tensor([0, 0, w, h])).all())
        identity = whole and (out_h, out_w) == (h, w) and not bool(flips.any())
        if identity:
            out = frames.clone() if self.photometric else frames
        else:
            planes = frames.reshape(b, n * c * t, h, w)
            out = torch.empty((b, n * c * t, out_h, out_w), dtype=torch.uint8, device=frames.device)
            step = c * self.chunk_frames  # every plane of a sample has the same box and flip
            for start in range(0, n * c * t, step):
                out[:, start : start + step] = crop_resize_flip(planes[:, start : start + step], boxes,
                                                                (out_h, out_w), hflip, vflip)
            out = out.view(b, n, c, t, out_h, out_w)
        for i, p in enumerate(params if self.photometric else ()):
            out[i] = self._photometric(out[i], p.photometric)
        return out

    def _photometric(self, clip: torch.Tensor, values: Sequence[Any]) -> torch.Tensor:
        """ImgAug / ColorJitter on one sample ``uint8 [N, C, T, H, W]``, ``chunk_frames`` frames at a time.

        Every operation works frame by frame with the sample's parameters, so
        the chunks give the same result as the whole clip at once.
        """
        n, c, t, out_h, out_w = clip.shape
        frames = clip.permute(0, 2, 1, 3, 4).reshape(n * t, c, out_h, out_w)  # [N*T, 3, H, W]
        done = torch.empty_like(frames)
        for start in range(0, n * t, self.chunk_frames):
            chunk = frames[start : start + self.chunk_frames]
            for transform, value in zip(self.photometric, values):
                chunk = ImgAug.apply(chunk, value) if isinstance(transform, ImgAug) else transform.apply(chunk, *value)
            done[start : start + self.chunk_frames] = chunk
        return done.view(n, t, c, out_h, out_w).permute(0, 2, 1, 3, 4)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Draw parameters (private generator) and augment ``uint8 [B, N, C, T, H, W]`` clips."""
        if not isinstance(frames, torch.Tensor) or frames.dim() != 6:
            got = getattr(frames, "shape", frames)
            raise TypeError(f"BatchClipAugment: frames must be [B, N, 3, T, H, W], got {got}")
        return self.apply(frames, self.draw(frames.shape[0], frames.shape[-2], frames.shape[-1]))

    def __repr__(self) -> str:
        body = ", ".join(repr(t) for t in self.transforms)
        return f"{type(self).__name__}(transforms=[{body}], seed={self.seed})"
