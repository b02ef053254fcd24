"""Pretraining a small video ViT on synthetic clips (the quick start's "VideoMAE").

The real QLoRA-AdaTAD recipe quantizes a *pretrained* VideoMAE ViT and
trains adapters and LoRA on top. No pretrained weights exist for the tiny
ViT of the synthetic configs, so this module makes them: the plain ViT of a
detection config (:class:`~opentad.models.backbones.vit.VisionTransformerCP`
with the config's sizes) is trained to tell, for every tubelet of a clip,
which action (or background) it shows, on synthetic videos of a seed of
their own (:mod:`opentad.datasets.synthetic.clips`), never on the detection
dataset. The result is written in upstream OpenTAD's converted layout
(``{"state_dict": {"backbone.*": ...}}``), so ``custom.pretrain`` loads it
like any VideoMAE checkpoint.

The file also records the digest of everything that made it; a rerun with
the same settings and architecture returns at once (the quick start's
second run).
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import os
import time
from typing import Any, Dict, Mapping, Optional, Sequence

import torch

from opentad.apis.synthetic_pretrain_clips import clip_sets, to_input
from opentad.apis.synthetic_pretrain_loop import PretrainHead, held_out_accuracy, train_loop
from opentad.apis.synthetic_pretrain_settings import PretrainSettings
from opentad.models.backbones.vit import VideoViT, VisionTransformerCP
from opentad.utils.checkpoint import atomic_save
from opentad.utils.safe_load import UnreadableFileError, UntrustedFileError, torch_load

logger = logging.getLogger(__name__)

__all__ = ["PretrainSettings", "vit_arguments", "pretrain_vit", "cached_digest"]

#: bump when the pretraining's result changes for unchanged settings.
PRETRAIN_VERSION = 1


def vit_arguments(backbone_cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The plain-ViT keyword arguments of a backbone config (adapter and QLoRA keys dropped).

    Args:
        backbone_cfg: ``model.backbone.backbone`` of a detection config.

    Raises:
        KeyError: the config lacks ``img_size`` or ``num_frames``.
    """
    accepted = set(inspect.signature(VideoViT.__init__).parameters) - {"self", "linear_factory", "adapter_for_block"}
    args = {k: v for k, v in backbone_cfg.items() if k in accepted}
    for key in ("img_size", "num_frames"):
        if key not in args:
            raise KeyError(f"backbone config needs {key!r} to pretrain a ViT for it (keys: {sorted(backbone_cfg)})")
    args.update(return_feat_map=True, with_cp=False, drop_path_rate=0.0)
    return args


def _digest(vit_args: Mapping[str, Any], settings: PretrainSettings, frame_stride: int, norm: Sequence) -> str:
    payload = dict(
        version=PRETRAIN_VERSION, vit=dict(vit_args), settings=dataclasses.asdict(settings), stride=frame_stride, norm=norm
    )
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cached_digest(path: str) -> Optional[str]:
    """The digest recorded in a pretrained file, or None when the file is absent or not ours."""
    if not os.path.isfile(path):
        return None
    try:
        meta = torch_load(path, what="pretrained ViT").get("meta", {})
    except (UnreadableFileError, UntrustedFileError, AttributeError):  # a damaged or foreign file is remade
        return None
    return meta.get("digest") if isinstance(meta, dict) else None


def pretrain_vit(
    vit_args: Mapping[str, Any],
    settings: PretrainSettings,
    *,
    frame_stride: int,
    mean: Sequence[float],
    std: Sequence[float],
    out: str,
    force: bool = False,
    progress: bool = True,
) -> Dict[str, Any]:
    """Pretrain the plain ViT of ``vit_args`` on labelled synthetic clips and save it to ``out``.

    Args:
        vit_args: :func:`vit_arguments` of the detection config's backbone.
        settings: what to train on and how long.
        frame_stride: frames between two sampled frames (the detection
            dataset's ``feature_stride * sample_stride``).
        mean, std: the data preprocessor's pixel normalisation (0-255 scale).
        out: the checkpoint to write (atomically).
        force: train even when ``out`` already holds this exact pretraining.
        progress: show a progress bar with ETA.

    Returns:
        ``{"path", "digest", "cached", "val_accuracy", "seconds"}``.
    """
    digest = _digest(vit_args, settings, frame_stride, [list(mean), list(std)])
    if not force and cached_digest(out) == digest:
        logger.info("pretrained ViT %s is up to date (digest %s); nothing to do", out, digest[:12])
        return dict(path=out, digest=digest, cached=True, val_accuracy=None, seconds=0.0)
    start = time.perf_counter()
    torch.manual_seed(settings.seed)
    train, val = clip_sets(vit_args, settings, frame_stride)
    vit = VisionTransformerCP(**vit_args)
    tubelet = int(vit_args.get("tubelet_size", 2))
    head = PretrainHead(vit.embed_dims, settings.num_classes + 1)
    mean_t = torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1, 1)
    std_t = torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1, 1)
    logger.info(
        "pretraining %s on %d synthetic videos (seed %d), %d steps of %d clips",
        type(vit).__name__,
        len(train.videos),
        settings.seed,
        settings.steps,
        settings.batch_size,
    )
    train_loop(vit, head, train, settings, normalise=lambda frames: to_input(frames, mean_t, std_t),
               tubelet=tubelet, progress=progress)
    accuracy = held_out_accuracy(vit, head, val, mean_t, std_t, tubelet) if val is not None else None
    seconds = time.perf_counter() - start
    meta = dict(digest=digest, settings=dataclasses.asdict(settings), val_accuracy=accuracy, seconds=seconds)
    state = {"backbone." + k: v.detach().clone() for k, v in vit.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    atomic_save({"state_dict": state, "meta": meta}, out)
    logger.info(
        "pretrained ViT written to %s in %.0f s; held-out tubelet accuracy %s (chance about %.0f%%)",
        out,
        seconds,
        "n/a" if accuracy is None else f"{100 * accuracy:.1f}%",
        100.0 / (settings.num_classes + 1),
    )
    return dict(path=out, digest=digest, cached=False, val_accuracy=accuracy, seconds=seconds)
