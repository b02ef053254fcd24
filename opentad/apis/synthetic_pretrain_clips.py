"""The pretraining's clips: synthetic videos rendered, resized to the ViT's input size, sampled and normalised.

Used by :func:`opentad.apis.synthetic_pretrain.pretrain_vit`; the videos come
from :mod:`opentad.datasets.synthetic.clips` with a seed of their own.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torch import Tensor

from opentad.apis.synthetic_pretrain_settings import PretrainSettings
from opentad.datasets.synthetic.clips import ClipSampler, render_labelled_videos
from opentad.datasets.synthetic.settings import settings_from_preset


__all__ = ["to_input", "clip_sets"]


def to_input(frames: np.ndarray, mean: Tensor, std: Tensor) -> Tensor:
    """uint8 ``[B, T, H, W, 3]`` -> normalised float ``[B, 3, T, H, W]``."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 4, 1, 2, 3).float()
    return (x - mean) / std


def _resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` -> ``[N, size, size, 3]`` as ``mmaction.Resize`` does (bilinear, no antialiasing)."""
    if frames.shape[1:3] == (size, size):
        return frames
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = TF.resize(x, [size, size], interpolation=TF.InterpolationMode.BILINEAR, antialias=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def clip_sets(vit_args: Mapping[str, Any], settings: PretrainSettings, frame_stride: int):
    """Training and held-out clip samplers, rendered at ``render_size`` and resized to ``img_size``.

    Raises:
        ValueError: ``render_size`` is not a whole multiple of ``img_size / patch_size`` cells.
    """
    size, patch = int(vit_args["img_size"]), int(vit_args.get("patch_size", 16))
    cells = size // patch
    render = settings.render_size or size
    if render % cells:
        raise ValueError(f"render_size={render} must be a multiple of img_size / patch_size = {cells}")
    synth = settings_from_preset(
        "default",
        dict(
            seed=settings.seed,
            num_train=settings.num_videos,
            num_test=settings.num_val_videos,
            num_classes=settings.num_classes,
            width=render,
            height=render,
            empty_fraction=0.0,
            actions_per_minute=settings.actions_per_minute,
            min_duration=settings.min_duration,
            max_duration=settings.max_duration,
        ),
    )
    clip_len = int(vit_args["num_frames"])
    samplers = []
    for subset, count in (("validation", settings.num_videos), ("test", settings.num_val_videos)):
        if not count:
            samplers.append(None)
            continue
        videos = render_labelled_videos(synth, frame_stride, subset, patch=render // cells)
        videos = [dataclasses.replace(v, frames=_resize_frames(v.frames, size)) for v in videos]
        samplers.append(ClipSampler(videos, clip_len=clip_len, seed=settings.seed))
    return samplers[0], samplers[1]
