"""Pretrained ViT weights: reading, converting the official layouts, loading with a report.

Two layouts exist:

* the official VideoMAE / VideoMAEv2 fine-tuned checkpoints (``{"module":
  state_dict}`` or ``{"model": ...}``) with timm-style names
  (``patch_embed.proj``, ``blocks.i.mlp.fc1``, ``head``);
* upstream OpenTAD's converted files (``{"state_dict": ...}``), the layout of
  an mmaction2 ``Recognizer3D``: ``backbone.patch_embed.projection``,
  ``backbone.blocks.i.mlp.layers.0.0``, ``backbone.pos_embed``,
  ``cls_head.fc_cls``.

:func:`convert_videomae_state_dict` maps the first onto the second;
:func:`load_pretrained` loads either (converting on the fly) into the
wrapper's ``model`` (whose keys are ``backbone.*``) and reports missing,
unexpected and shape-mismatched keys. Nothing is ever downloaded.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from opentad.models.bricks.vit import get_sinusoid_encoding
from opentad.models.bricks.vit_adapter import AdapterBase
from opentad.utils.safe_load import torch_load

logger = logging.getLogger(__name__)

__all__ = [
    "LoadReport",
    "read_checkpoint",
    "is_official_videomae",
    "convert_videomae_state_dict",
    "load_pretrained",
    "summarise_keys",
    "VIDEOMAE_ARCHS",
    "infer_videomae_arch",
    "convert_videomae_file",
]

#: upstream converter's ``--arch`` choices: (embed_dims, depth, patch_size).
VIDEOMAE_ARCHS: Dict[str, Tuple[int, int, int]] = {
    "small": (384, 12, 16),
    "base": (768, 12, 16),
    "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
    "giant": (1408, 40, 14),
}

#: substring renames from the official names to upstream's (mmcv) names, applied in order.
_RENAMES: Tuple[Tuple[str, str], ...] = (
    (".mlp.fc1.", ".mlp.layers.0.0."),
    (".mlp.fc2.", ".mlp.layers.1."),
    ("patch_embed.proj.", "patch_embed.projection."),
)


@dataclasses.dataclass
class LoadReport:
    """What loading a state dict did: keys absent from the file, keys the model lacks, shape conflicts."""

    missing: List[str]
    unexpected: List[str]
    mismatched: List[str]


def read_checkpoint(path: str, *, trust_pickle: bool = False) -> Dict[str, Tensor]:
    """The state dict in a checkpoint file, with any ``module.`` prefix removed.

    Takes ``state_dict``, ``model`` or ``module`` when the file nests it. The
    file is read weights-only: tensors, plain values and ``argparse.Namespace``
    (the training arguments official VideoMAE checkpoints carry) are rebuilt;
    anything else is refused, never unpickled.

    Args:
        path: the checkpoint file.
        trust_pickle: full unpickling, which can run code stored in the file;
            only the converters' ``--trust-pickle`` sets it, for a trusted file.

    Raises:
        FileNotFoundError: no such file.
        UntrustedFileError: the file needs full unpickling and ``trust_pickle`` is False.
        UnreadableFileError: empty, truncated, text or not a ``torch.save`` file.
        ValueError: the file holds no mapping of tensors.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"pretrained checkpoint not found: {path}. Convert the official weights with "
            f"tools/model_converters/convert_videomae.py (or convert_videomaev2.py), or set custom.pretrain=None."
        )
    ckpt = torch_load(path, what="pretrained file", trust_pickle=trust_pickle, allowed=[argparse.Namespace])
    for key in ("state_dict", "model", "module"):
        if isinstance(ckpt, Mapping) and key in ckpt and isinstance(ckpt[key], Mapping):
            ckpt = ckpt[key]
            break
    if not isinstance(ckpt, Mapping) or not any(isinstance(v, Tensor) for v in ckpt.values()):
        raise ValueError(f"{path}: no state dict found (looked for 'state_dict', 'model', 'module' or a flat dict)")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in ckpt.items()}


def is_official_videomae(state_dict: Mapping[str, Tensor]) -> bool:
    """True for the official (timm-style) layout: un-prefixed ``blocks.*`` / ``patch_embed.proj.*``."""
    return any(k.startswith("blocks.") or k.startswith("patch_embed.proj.") for k in state_dict)


def convert_videomae_state_dict(
    state_dict: Mapping[str, Tensor], *, img_size: int = 224, num_frames: int = 16, keep_head: bool = True
) -> Dict[str, Tensor]:
    """Official VideoMAE/VideoMAEv2 names -> upstream OpenTAD (mmaction2 Recognizer3D) names.

    ``fc1 -> layers.0.0``, ``fc2 -> layers.1``, ``patch_embed.proj ->
    patch_embed.projection``, everything under ``backbone.``; ``head.* ->
    cls_head.fc_cls.*`` (dropped with ``keep_head=False``). The fixed
    sine-cosine ``backbone.pos_embed`` that converted files carry is added
    for ``img_size`` and ``num_frames`` when the file has no ``pos_embed``.

    Args:
        state_dict: official layout.
        img_size: frame size of the position table.
        num_frames: frames per clip of the position table.
        keep_head: keep the classifier as ``cls_head.fc_cls.*``.

    Raises:
        KeyError: no ``patch_embed.proj.weight`` (not a VideoMAE fine-tuned checkpoint).
    """
    if "patch_embed.proj.weight" not in state_dict:
        raise KeyError(
            "not an official VideoMAE fine-tuned checkpoint: 'patch_embed.proj.weight' is missing "
            f"(first keys: {list(state_dict)[:5]})"
        )
    out: Dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("head."):
            if keep_head:
                out["cls_head.fc_cls." + key[len("head.") :]] = value
            continue
        for old, new in _RENAMES:
            key = key.replace(old, new)
        out["backbone." + key] = value
    if "backbone.pos_embed" not in out:
        embed_dims, _, tubelet, patch, _ = state_dict["patch_embed.proj.weight"].shape
        n = (num_frames // tubelet) * (img_size // patch) ** 2
        out["backbone.pos_embed"] = get_sinusoid_encoding(n, embed_dims)
    return out


def summarise_keys(keys: List[str]) -> List[str]:
    """Keys with block numbers folded (``blocks.*.attn.qkv.weight``), unique, in order."""
    seen: Dict[str, None] = {}
    for key in keys:
        seen.setdefault(re.sub(r"\.\d+\.", ".*.", key), None)
    return list(seen)


def _adapter_prefixes(model: nn.Module) -> Tuple[str, ...]:
    return tuple(n + "." for n, m in model.named_modules() if isinstance(m, AdapterBase))


def _log_report(path: str, report: LoadReport, model: nn.Module) -> None:
    new_modules = _adapter_prefixes(model)
    expected_missing = [k for k in report.missing if k.startswith(new_modules)]
    other_missing = [k for k in report.missing if not k.startswith(new_modules)]
    head = [k for k in report.unexpected if k.startswith("cls_head.")]
    other_unexpected = [k for k in report.unexpected if not k.startswith("cls_head.")]
    logger.info(
        "loaded %s: %d missing (%d in new adapters), %d unexpected (%d classifier), %d shape-mismatched",
        path,
        len(report.missing),
        len(expected_missing),
        len(report.unexpected),
        len(head),
        len(report.mismatched),
    )
    if expected_missing:
        logger.info("adapter keys initialised, not loaded: %s", summarise_keys(expected_missing))
    if other_missing:
        logger.warning("missing keys (left at their initial values): %s", summarise_keys(other_missing))
    if other_unexpected:
        logger.warning("unexpected keys (ignored): %s", summarise_keys(other_unexpected))
    if report.mismatched:
        logger.warning("shape-mismatched keys (not loaded): %s", report.mismatched)


def load_pretrained(model: nn.Module, path: str, *, img_size: int = 224, num_frames: int = 16) -> LoadReport:
    """Load a pretrained checkpoint into a module whose keys read ``backbone.*``.

    Official VideoMAE checkpoints are converted on the fly; keys whose shapes
    differ are skipped. Everything left out is logged (adapter keys and the
    classifier at INFO, the rest as warnings).

    Args:
        model: the wrapper's ``model`` (``model.backbone`` is the ViT).
        path: checkpoint file.
        img_size, num_frames: position table of an on-the-fly conversion.

    Returns:
        The :class:`LoadReport`.

    Raises:
        FileNotFoundError: no such file.
    """
    state_dict = read_checkpoint(path)
    if is_official_videomae(state_dict):
        logger.info("%s is in the official VideoMAE layout; converting its keys", path)
        state_dict = convert_videomae_state_dict(state_dict, img_size=img_size, num_frames=num_frames)
    own = model.state_dict()
    conflicts = {k for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)}
    loadable = {k: v for k, v in state_dict.items() if k in own and k not in conflicts}
    result = model.load_state_dict(loadable, strict=False)
    report = LoadReport(
        missing=[k for k in result.missing_keys if k not in conflicts],
        unexpected=[k for k in state_dict if k not in own],
        mismatched=[
            f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}" for k in sorted(conflicts)
        ],
    )
    _log_report(path, report, model)
    return report


def infer_videomae_arch(state_dict: Mapping[str, Tensor]) -> Dict[str, int]:
    """``embed_dims``, ``depth``, ``patch_size``, ``tubelet_size`` and ``mlp_hidden`` of an official checkpoint.

    Raises:
        KeyError: no ``patch_embed.proj.weight`` or no ``blocks.0.mlp.fc1.weight``.
    """
    embed_dims, _, tubelet, patch, _ = state_dict["patch_embed.proj.weight"].shape
    depth = len({k.split(".")[1] for k in state_dict if k.startswith("blocks.")})
    hidden = state_dict["blocks.0.mlp.fc1.weight"].shape[0]
    return dict(embed_dims=embed_dims, depth=depth, patch_size=patch, tubelet_size=tubelet, mlp_hidden=hidden)


def convert_videomae_file(
    in_path: str,
    out_path: str,
    *,
    arch: Optional[str] = None,
    img_size: int = 224,
    num_frames: int = 16,
    keep_head: bool = True,
    trust_pickle: bool = False,
) -> Dict[str, int]:
    """Convert an official VideoMAE/VideoMAEv2 checkpoint file into upstream OpenTAD's layout.

    Writes ``{"state_dict": converted, "meta": {...}}`` (``custom.pretrain``
    of the AdaTAD configs reads it) and returns the inferred architecture.

    Args:
        in_path: official checkpoint (``module``/``model`` nesting accepted).
        out_path: file to write (its folder is created).
        arch: if given, one of :data:`VIDEOMAE_ARCHS`, checked against the weights.
        img_size, num_frames: position table stored with the weights.
        keep_head: keep the classifier as ``cls_head.fc_cls.*``.
        trust_pickle: read ``in_path`` with full unpickling (it may run code
            stored in the file: only for a file you trust). The output is
            always loadable weights-only.

    Raises:
        ValueError: ``arch`` unknown or not matching the weights.
        UntrustedFileError: ``in_path`` needs full unpickling and ``trust_pickle`` is False.
    """
    state_dict = read_checkpoint(in_path, trust_pickle=trust_pickle)
    found = infer_videomae_arch(state_dict)
    if arch is not None:
        if arch not in VIDEOMAE_ARCHS:
            raise ValueError(f"arch={arch!r} not in {sorted(VIDEOMAE_ARCHS)}")
        want = dict(zip(("embed_dims", "depth", "patch_size"), VIDEOMAE_ARCHS[arch]))
        if any(found[k] != v for k, v in want.items()):
            raise ValueError(f"{in_path}: weights are {found}, not the {arch} architecture {want}")
    converted = convert_videomae_state_dict(state_dict, img_size=img_size, num_frames=num_frames, keep_head=keep_head)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    meta = dict(converted_from=os.path.basename(in_path), img_size=img_size, num_frames=num_frames, **found)
    torch.save({"state_dict": converted, "meta": meta}, out_path)
    logger.info("wrote %s (%d tensors, %s)", out_path, len(converted), found)
    return found
