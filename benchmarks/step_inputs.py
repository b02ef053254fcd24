"""What one row of :mod:`benchmarks.step` runs on: the config pairs, the overrides, the random batch.

A row's config is a shipped file with ``model.backbone.custom.pretrain=None``
(random weights: nothing is read from disk) and its ``--cfg-options``-style
overrides, checked before anything is measured; its batch is drawn from the
seed alone, shaped as the config's training pipeline loads videos.
"""
from __future__ import annotations

import argparse
import os
import re
from typing import Any, Dict, List, Optional, Tuple

import torch

from benchmarks.common import ROOT
from opentad.models.backbones.backbone_wrapper import WrapperOptions
from opentad.registry import ConfigError
from opentad.utils.config import Config, DictAction, load_config, validate_config

__all__ = ["SIZES", "parse_variant", "load_row_config", "vit_keys", "input_shape", "random_batch", "rows_to_measure"]

_THUMOS = "configs/adatad/thumos/e2e_thumos_videomae{}_adapter{}.py"
#: size -> (AdaTAD config, QLoRA config, default batch)
SIZES: Dict[str, Tuple[str, str, int]] = {
    **{s: (_THUMOS.format(f"_{s}_768x1_160", ""), _THUMOS.format(f"_{s}_768x1_160", "_qlora"), 2) for s in "sblh"},
    "g": (_THUMOS.format("v2_g_768x1_160", ""), _THUMOS.format("v2_g_768x1_160", "_qlora"), 2),
    "g224": (_THUMOS.format("v2_g_768x2_224", ""), _THUMOS.format("v2_g_768x2_224", "_qlora"), 1),  # the issue's
}
_NO_FILES = {"model.backbone.custom.pretrain": None}  # random weights: nothing is read


def vit_keys(cfg: Config) -> Dict[str, Any]:
    """The keys of :func:`benchmarks.step.vit_forward_flops` from the config's ViT (with the ViT's defaults)."""
    vit = cfg.model.backbone.backbone
    keys = dict(patch_size=16, tubelet_size=2, in_channels=3, num_frames=16, mlp_ratio=4.0)
    keys.update({k: vit[k] for k in (*keys, "embed_dims", "depth") if k in vit})
    return keys


def parse_variant(text: str) -> Tuple[str, Dict[str, Any]]:
    """``NAME=key=value[,key=value]...`` -> ``(NAME, {key: value})`` (values parsed as ``--cfg-options``).

    Raises:
        SystemExit: no name or no ``key=value`` (one line naming the variant).
    """
    name, _, rest = text.partition("=")
    pairs = [p for p in re.split(r",(?=\s*[\w.]+=)", rest) if p.strip()]
    if not name.strip() or not pairs or any("=" not in p for p in pairs):
        raise SystemExit(f"--variants {text!r}: expected NAME=key=value[,key=value]...")
    namespace = argparse.Namespace()
    try:
        DictAction(option_strings=["--variants"], dest="o")(None, namespace, pairs)
    except argparse.ArgumentError as err:
        raise SystemExit(f"--variants {text!r}: {err.message}") from None
    return name.strip(), namespace.o


def _train_transform(cfg: Config, kind: str, test) -> Optional[Dict[str, Any]]:
    found = [t for t in cfg.dataset.train.pipeline if t["type"] == kind and test(t)]
    return found[-1] if found else None


def load_row_config(path: str, overrides: Dict[str, Any], frames: Optional[int]) -> Config:
    """The config of one row: ``path`` with ``pretrain=None``, ``overrides`` and ``frames`` applied, validated.

    Raises:
        ConfigError: an override that does not bind (the message names the key).
    """
    cfg = load_config(os.path.join(ROOT, path) if not os.path.isabs(path) else path, {**_NO_FILES, **overrides})
    validate_config(cfg, source=path)
    WrapperOptions.from_mapping(cfg.model.backbone.get("custom"))  # validate_config does not look inside custom
    if frames is not None:  # clips keep num_frames frames; the features are still resized to the window
        chunks = frames // vit_keys(cfg)["num_frames"]
        custom = cfg.model.backbone.custom
        for t in list(custom.get("pre_processing_pipeline") or []) + list(custom.get("post_processing_pipeline") or []):
            if "t1" in t:
                t["t1"] = chunks
        if "total_frames" in cfg.model.backbone.backbone:
            cfg.model.backbone.backbone.total_frames = frames
    return cfg


def input_shape(cfg: Config, args: argparse.Namespace) -> Tuple[int, int, int]:
    """``(window, frames, img_size)`` of the config's training pipeline (``args.frames`` / ``img_size`` win)."""
    load = _train_transform(cfg, "LoadFrames", lambda t: "trunc_len" in t)
    resize = _train_transform(cfg, "mmaction.Resize", lambda t: -1 not in tuple(t["scale"]))
    if load is None or (resize is None and args.img_size is None):
        raise ConfigError("dataset.train.pipeline: no LoadFrames with trunc_len or fixed mmaction.Resize")
    window = int(load["trunc_len"])
    frames = args.frames or window * int(load.get("scale_factor", 1))
    return window, frames, args.img_size or int(tuple(resize["scale"])[0])


def random_batch(cfg: Config, batch: int, shape: Tuple[int, int, int], seed: int, device) -> Dict[str, Any]:
    """Frames ``[B, 1, 3, frames, img, img]`` (uint8), masks ``[B, window]`` and 3 segments per video, from ``seed``."""
    window, frames, img = shape
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, 256, (batch, 1, 3, frames, img, img), generator=gen, dtype=torch.uint8)
    starts = torch.rand(batch, 3, generator=gen) * 0.8 * window
    lengths = 4 + torch.rand(batch, 3, generator=gen) * 0.2 * window
    segments = torch.stack([starts, torch.clamp(starts + lengths, max=window)], dim=-1)
    labels = torch.randint(0, int(cfg.model.rpn_head.num_classes), (batch, 3), generator=gen)
    return dict(inputs=inputs.to(device), masks=torch.ones(batch, window, dtype=torch.bool, device=device),
                metas=[dict(video_name=f"random{i}") for i in range(batch)],
                gt_segments=list(segments.to(device)), gt_labels=list(labels.to(device)))


def rows_to_measure(args: argparse.Namespace) -> List[Tuple[str, str, str, Dict[str, Any]]]:
    """``(size, config label, path, overrides)`` of every row, each config loaded and validated first.

    Raises:
        SystemExit: an unknown size, a bad ``--configs``, or a variant or ``--common`` option whose keys do not
            bind (one line).
    """
    if args.configs:
        pair = [p.strip() for p in args.configs.split(",")]
        if len(pair) != 2 or not all(pair):
            raise SystemExit(f"--configs {args.configs!r}: expected ADATAD,QLORA (two config files)")
        pairs = {"custom": pair}
    else:
        sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
        bad = [s for s in sizes if s not in SIZES]
        if bad:
            raise SystemExit(f"--sizes: unknown {bad}; choose from {list(SIZES)}")
        pairs = {s: SIZES[s][:2] for s in sizes}
    variants = [parse_variant(v) for v in args.variants]
    common = parse_variant(f"--common={args.common}")[1] if getattr(args, "common", None) else {}
    rows = []
    for size, (adatad, qlora) in pairs.items():
        rows += [(size, "AdaTAD", adatad, dict(common)), (size, "QLoRA", qlora, dict(common))]
        rows += [(size, name, qlora, {**common, **overrides}) for name, overrides in variants]
    for size, label, path, overrides in rows:
        try:
            load_row_config(path, overrides, args.frames)
        except (ConfigError, FileNotFoundError) as err:
            raise SystemExit(f"{label} ({path}, overrides {overrides}): {' '.join(str(err).split())}") from None
    return rows
