"""Checkpoints: atomic writes, exact resume, and loading OpenTAD weights.

A checkpoint is a dict of tensors and plain Python values (so it loads with
``torch.load(weights_only=True)``)::

    {"epoch": int, "state_dict": {...}, "state_dict_ema": {...}?,
     "optimizer": {...}, "scheduler": {...}, "scaler": {...}?, "rng": {...}?, "meta": {...}}

Model keys carry DDP's ``module.`` prefix, as in the files upstream OpenTAD
writes, so either tool loads the other's files; the prefix is optional on load.
A model may provide its own state with ``checkpoint_state_dict()`` and
``load_checkpoint_state_dict(state_dict, strict)``, which returns ``(missing,
unexpected)`` or None to leave a plain state dict to the default path (QLoRA models store only the
trainable and floating-point tensors and rebuild the quantized base).
"""
from __future__ import annotations

import logging
import os
import shutil
from typing import Any, Dict, List, Mapping, NamedTuple

import torch
import torch.nn as nn

from opentad.utils.misc import unwrap_model

__all__ = [
    "CheckpointError",
    "LoadReport",
    "atomic_save",
    "atomic_link",
    "model_state_dict",
    "strip_prefix",
    "load_model_state",
    "load_checkpoint",
    "read_checkpoint",
]

logger = logging.getLogger(__name__)

PREFIX = "module."


class CheckpointError(RuntimeError):
    """A checkpoint that does not match the model (strict load) or cannot be read."""


class LoadReport(NamedTuple):
    """Keys the model expected but the checkpoint lacked, and keys the model does not have."""

    missing_keys: List[str]
    unexpected_keys: List[str]


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``.

    A crash while writing leaves any previous file at ``path`` untouched and
    removes the temporary file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp_path = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with open(tmp_path, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def atomic_link(src: str, dst: str) -> None:
    """Make ``dst`` a hard link to (or, where links fail, a copy of) ``src``, replacing ``dst`` atomically."""
    tmp_path = os.path.join(os.path.dirname(os.path.abspath(dst)), f".{os.path.basename(dst)}.tmp{os.getpid()}")
    try:
        try:
            os.link(src, tmp_path)
        except OSError:
            shutil.copyfile(src, tmp_path)
        os.replace(tmp_path, dst)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def model_state_dict(model: nn.Module, *, prefix: str = PREFIX) -> Dict[str, torch.Tensor]:
    """The state to save: the model's ``checkpoint_state_dict()`` if it has one, else ``state_dict()``.

    Args:
        model: the model, DDP-wrapped or not.
        prefix: prepended to every key (DDP's ``module.``, as upstream files have).
    """
    inner = unwrap_model(model)
    hook = getattr(inner, "checkpoint_state_dict", None)
    state = hook() if callable(hook) else inner.state_dict()
    return {prefix + k: v for k, v in state.items()}


def strip_prefix(state_dict: Mapping[str, Any], prefix: str = PREFIX) -> Dict[str, Any]:
    """Remove ``prefix`` from the keys that start with it (others are kept as they are)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def _format_keys(keys: List[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_model_state(model: nn.Module, state_dict: Mapping[str, Any], *, strict: bool = True) -> LoadReport:
    """Load weights into ``model`` (``module.`` prefixes stripped) and report key mismatches.

    Args:
        model: the model, DDP-wrapped or not.
        state_dict: the weights.
        strict: raise instead of loading when a key is missing or unexpected.

    Returns:
        The missing and unexpected keys (empty lists on an exact match).

    Raises:
        CheckpointError: ``strict`` and the keys differ; the message lists them.
            Nothing is loaded in that case.
    """
    inner = unwrap_model(model)
    state = strip_prefix(state_dict)
    hook = getattr(inner, "load_checkpoint_state_dict", None)
    result = hook(state, strict=strict) if callable(hook) else None
    if result is not None:  # None: the hook leaves this state to the plain path below
        return LoadReport(*result)
    expected = set(inner.state_dict().keys())
    report = LoadReport(sorted(expected - set(state)), sorted(set(state) - expected))
    if strict and (report.missing_keys or report.unexpected_keys):
        raise CheckpointError(
            f"Checkpoint does not match {type(inner).__name__}: "
            f"missing keys [{_format_keys(report.missing_keys)}]; "
            f"unexpected keys [{_format_keys(report.unexpected_keys)}]. "
            "Load with strict=False to load the matching keys only."
        )
    inner.load_state_dict(state, strict=False)
    if report.missing_keys:
        logger.warning("Missing keys in checkpoint: %s", _format_keys(report.missing_keys))
    if report.unexpected_keys:
        logger.warning("Unexpected keys in checkpoint: %s", _format_keys(report.unexpected_keys))
    return report


def read_checkpoint(path: str, *, map_location: Any = "cpu", weights_only: bool = True) -> Dict[str, Any]:
    """``torch.load`` a checkpoint file.

    Args:
        path: the file.
        map_location: where tensors go.
        weights_only: refuse files that hold more than tensors and plain values
            (all files this project writes qualify; set False only for trusted
            files written by other tools).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is not a dict.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    checkpoint = torch.load(path, map_location=map_location, weights_only=weights_only)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    return dict(checkpoint)


def load_checkpoint(
    model: nn.Module,
    path: str,
    *,
    use_ema: bool = False,
    strict: bool = True,
    map_location: Any = "cpu",
    weights_only: bool = True,
) -> Dict[str, Any]:
    """Load a checkpoint's model weights (``state_dict``, or ``state_dict_ema`` with ``use_ema``).

    A bare state dict (a file without a ``state_dict`` key) is accepted too.

    Args:
        model: the model to fill.
        path: the checkpoint file (this project's or upstream OpenTAD's).
        use_ema: load the EMA weights.
        strict: see :func:`load_model_state`.
        map_location, weights_only: see :func:`read_checkpoint`.

    Returns:
        The whole checkpoint dict.

    Raises:
        CheckpointError: ``use_ema`` but the file has no ``state_dict_ema``; or a strict mismatch.
    """
    checkpoint = read_checkpoint(path, map_location=map_location, weights_only=weights_only)
    key = "state_dict_ema" if use_ema else "state_dict"
    if key in checkpoint:
        state = checkpoint[key]
    elif "state_dict" in checkpoint or "state_dict_ema" in checkpoint:
        raise CheckpointError(
            f"{path} has no {key!r}; it holds {sorted(checkpoint)} (solver.ema decides which one is loaded)"
        )
    else:
        state = checkpoint
    report = load_model_state(model, state, strict=strict)
    logger.info(
        "Loaded %s from %s (epoch %s): %d missing, %d unexpected keys.",
        key, path, checkpoint.get("epoch", "?"), len(report.missing_keys), len(report.unexpected_keys),
    )
    return checkpoint

