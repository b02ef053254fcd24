"""Snippet features ``[T, C]`` from a config's video backbone, for feature-based configs.

A video of ``F`` frames gives ``T = F // snippet_stride`` rows. Row ``t``
describes snippet ``t``, frames ``[s*t, s*t + s)`` (``s`` the snippet
stride): the backbone sees one clip of ``clip_len`` frames centred on that
snippet, frames ``s*t + s//2 + k*frame_interval`` for ``k`` in
``[-clip_len//2, clip_len - clip_len//2)``, clipped to the video (edge
frames repeat). Its output feature map ``[C, t, h, w]`` is averaged to ``C``
values. So a feature config reading these files uses
``feature_stride=snippet_stride``, ``sample_stride=1``, ``offset_frames=0``
(the synthetic features' convention) and ``in_channels=C``.

Frames go through the spatial steps of the config's test pipeline (those
between the decode step and ``FormatShape``: resizing, centre crop), then the
backbone wrapper's pixel normalisation, then the ViT itself. The wrapper's
window-level pre/post-processing is not used: each clip is a video of its
own, so for adapter backbones (AdaTAD, QLoRA-AdaTAD, side-tuning) the
temporal adapters' ``total_frames`` is set to ``clip_len`` (their weights do
not depend on it) and they mix time within the clip only.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import tqdm

from opentad.apis.common import (
    USER_ERRORS,
    InferenceError,
    VideoInfo,
    check_min_frames,
    probe_video,
    resolve_device,
    unique_video_names,
)
from opentad.apis.loading import load_detector
from opentad.apis.video_list import VIDEO_EXTENSIONS, list_videos
from opentad.datasets.video_reader import VideoReader
from opentad.transforms import Compose
from opentad.utils.config import load_config, validate_config

logger = logging.getLogger(__name__)

__all__ = [
    "VIDEO_EXTENSIONS",
    "list_videos",
    "snippet_clip_indices",
    "FeatureExtractor",
    "ExtractionReport",
    "extract_features",
]

_DECODE_TYPES = ("VideoDecode", "mmaction.DecordDecode")
_FORMAT_TYPES = ("FormatShape", "mmaction.FormatShape")


def snippet_clip_indices(num_frames: int, *, snippet_stride: int, clip_len: int, frame_interval: int = 1) -> np.ndarray:
    """Frame indices of every snippet's clip, ``int64 [num_frames // snippet_stride, clip_len]`` (module docstring)."""
    num_snippets = num_frames // snippet_stride
    centres = np.arange(num_snippets) * snippet_stride + snippet_stride // 2
    offsets = frame_interval * np.arange(-(clip_len // 2), clip_len - clip_len // 2)
    return np.clip(centres[:, None] + offsets[None, :], 0, max(0, num_frames - 1)).astype(np.int64)


def _frame_steps(pipeline: Sequence[Mapping[str, Any]], config: str) -> List[Dict[str, Any]]:
    """The steps of the test pipeline between the decode step and ``FormatShape`` (exclusive)."""
    types = [step.get("type") for step in pipeline]
    decode = [i for i, t in enumerate(types) if t in _DECODE_TYPES]
    shape = [i for i, t in enumerate(types) if t in _FORMAT_TYPES]
    if not decode or not shape or shape[0] < decode[0]:
        raise InferenceError(
            f"{config}: dataset.test.pipeline needs a decode step ({list(_DECODE_TYPES)}) followed by "
            f"{list(_FORMAT_TYPES)}; its steps are {types}"
        )
    return [copy.deepcopy(dict(step)) for step in pipeline[decode[0] + 1 : shape[0]]]


class FeatureExtractor:
    """Run a config's video backbone over snippet clips of videos.

    Args:
        config: a config with an end-to-end backbone (``model.backbone`` a
            ``mmaction.Recognizer3D`` wrapper around a ViT).
        checkpoint: a detector checkpoint trained with it, or None (the
            backbone as configured: its ``pretrain`` file, adapters as initialised).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or None (CUDA when available).
        snippet_stride: frames per feature row.
        clip_len: frames per clip; None for the ViT's ``num_frames``, which it must equal.
        frame_interval: gap between a clip's frames.
        batch_size: clips per forward.
        cfg_options: config overrides.
        use_ema: use the EMA weights; None follows ``solver.ema``.

    Raises:
        InferenceError: the config has no video backbone, a bad stride, or
            ``clip_len`` differs from the ViT's ``num_frames``.
        FileNotFoundError, CheckpointError: see :func:`~opentad.apis.loading.load_detector`.
    """

    def __init__(
        self,
        config: str,
        checkpoint: Optional[str] = None,
        *,
        device: Optional[str] = None,
        snippet_stride: int = 4,
        clip_len: Optional[int] = None,
        frame_interval: int = 1,
        batch_size: int = 16,
        cfg_options: Optional[Mapping[str, Any]] = None,
        use_ema: Optional[bool] = None,
    ):
        cfg = load_config(config, cfg_options)
        validate_config(cfg, source=config)
        model_cfg = cfg.model.to_dict()
        wrapper_cfg = model_cfg.get("backbone")
        if not isinstance(wrapper_cfg, dict) or not isinstance(wrapper_cfg.get("backbone"), dict):
            raise InferenceError(f"{config} has no video backbone (model.backbone.backbone); it reads features already")
        vit_cfg = wrapper_cfg["backbone"]
        num_frames = int(vit_cfg["num_frames"]) if "num_frames" in vit_cfg else 16
        self.clip_len = num_frames if clip_len is None else int(clip_len)
        if self.clip_len != num_frames:
            raise InferenceError(
                f"--clip-len {self.clip_len}: the ViT of {config} takes clips of num_frames={num_frames} frames "
                "(its position table); use that"
            )
        if snippet_stride < 1 or frame_interval < 1 or batch_size < 1:
            raise InferenceError(
                f"snippet_stride={snippet_stride}, frame_interval={frame_interval}, batch_size={batch_size}: "
                "all must be >= 1"
            )
        if "total_frames" in vit_cfg:
            vit_cfg["total_frames"] = self.clip_len
        solver = cfg.solver.to_dict() if "solver" in cfg else {}
        ema = bool(solver.get("ema", False)) if use_ema is None else use_ema
        self.device = resolve_device(device)
        self.wrapper = load_detector(model_cfg, checkpoint, device=self.device, use_ema=ema, config=config).backbone
        self.transforms = Compose(_frame_steps(cfg.dataset.test.pipeline, config))
        self.snippet_stride, self.frame_interval = int(snippet_stride), int(frame_interval)
        self.batch_size = int(batch_size)

    @torch.no_grad()
    def _forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``uint8 [B, 3, L, H, W]`` -> ``float32 [B, C]``."""
        preprocessor = self.wrapper.model.data_preprocessor
        x = preprocessor(clips.to(self.device)) if preprocessor is not None else clips.to(self.device).float()
        feats = self.wrapper.model.backbone(x)
        if feats.dim() == 5:
            feats = feats.mean(dim=(2, 3, 4))
        if feats.dim() != 2:
            shape = tuple(feats.shape)
            raise InferenceError(f"the backbone returned features of shape {shape}; expected [B, C, t, h, w] or [B, C]")
        return feats.float().cpu()

    def _clips(self, reader: VideoReader, indices: np.ndarray) -> torch.Tensor:
        """Decode and transform the frames of ``indices [B, L]`` once each: ``uint8 [B, 3, L, H', W']``."""
        unique, inverse = np.unique(indices, return_inverse=True)
        frames = reader.get_batch(unique)
        results = self.transforms(dict(imgs=frames, img_shape=tuple(frames.shape[-2:])))
        frames = results["imgs"][torch.from_numpy(inverse.reshape(-1))]
        return frames.reshape(indices.shape + tuple(frames.shape[1:])).permute(0, 2, 1, 3, 4)

    def extract(self, info: VideoInfo, progress: Optional[tqdm.tqdm] = None) -> np.ndarray:
        """Features of one probed video, ``float32 [frames // snippet_stride, C]``.

        Raises:
            VideoTooShortError: fewer frames than one snippet.
            VideoReadError: decoding failed (names the file).
        """
        check_min_frames(info, self.snippet_stride)
        indices = snippet_clip_indices(
            info.num_frames,
            snippet_stride=self.snippet_stride,
            clip_len=self.clip_len,
            frame_interval=self.frame_interval,
        )
        rows: List[torch.Tensor] = []
        with VideoReader(info.path) as reader:
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                rows.append(self._forward(self._clips(reader, batch)))
                if progress is not None:
                    progress.update(len(batch))
        return torch.cat(rows).numpy().astype(np.float32)


@dataclasses.dataclass
class ExtractionReport:
    """What :func:`extract_features` did: written files, skipped ones, and failures ``{video: reason}``."""

    written: List[str] = dataclasses.field(default_factory=list)
    skipped: List[str] = dataclasses.field(default_factory=list)
    failed: Dict[str, str] = dataclasses.field(default_factory=dict)


def _save_npy(array: np.ndarray, path: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as handle:
            np.save(handle, array)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _probe_all(
    videos: Sequence[str], *, snippet_stride: int, skip_bad: bool, report: ExtractionReport
) -> List[VideoInfo]:
    """Probe every video and check its length; bad ones raise together, or are recorded with ``skip_bad``."""
    infos, bad = [], {}
    for path in videos:
        try:
            info = probe_video(path)
            check_min_frames(info, snippet_stride)
            infos.append(info)
        except USER_ERRORS as exc:
            bad[path] = str(exc)
    if bad and not skip_bad:
        listing = "\n  ".join(f"{path}: {reason}" for path, reason in bad.items())
        raise InferenceError(f"{len(bad)} video(s) cannot be read (use --skip-bad to go on without them):\n  {listing}")
    report.failed.update(bad)
    return infos


def extract_features(
    extractor: FeatureExtractor,
    videos: Sequence[str],
    out_dir: str,
    *,
    skip_existing: bool = False,
    skip_bad: bool = False,
    show_progress: bool = True,
) -> ExtractionReport:
    """Write ``out_dir/<video name>.npy`` (``float32 [T, C]``) for every video.

    Every video is probed first, so unreadable files are found before any
    work (all listed in one error, or skipped with ``skip_bad``). Files are
    written atomically; a progress bar with ETA counts snippets.

    Raises:
        InferenceError: unreadable or too-short videos without ``skip_bad``, or two videos with one name.
    """
    unique_video_names(videos)
    report = ExtractionReport()
    infos = _probe_all(videos, snippet_stride=extractor.snippet_stride, skip_bad=skip_bad, report=report)
    os.makedirs(out_dir, exist_ok=True)
    todo: List[Tuple[VideoInfo, str]] = []
    for info in infos:
        path = os.path.join(out_dir, f"{info.name}.npy")
        if skip_existing and os.path.isfile(path):
            report.skipped.append(path)
        else:
            todo.append((info, path))
    total = sum(info.num_frames // extractor.snippet_stride for info, _ in todo)
    with tqdm.tqdm(total=total, unit="snippet", desc="features", disable=not show_progress, dynamic_ncols=True) as bar:
        for info, path in todo:
            try:
                _save_npy(extractor.extract(info, bar), path)
                report.written.append(path)
            except USER_ERRORS as exc:
                if not skip_bad:
                    raise
                report.failed[info.path] = str(exc)
    return report
