"""Checkpoints: exact resume and loading OpenTAD weights (written atomically, :mod:`opentad.utils.atomic_files`).

A checkpoint is a dict of tensors and plain Python values (so it loads with
``torch.load(weights_only=True)``)::

    {"epoch": int, "state_dict": {...}, "state_dict_ema": {...}?,
     "optimizer": {...}, "scheduler": {...}, "scaler": {...}?, "rng": {...}?, "meta": {...}}

Model keys carry DDP's ``module.`` prefix, as in the files upstream OpenTAD
writes, so either tool loads the other's files; the prefix is optional on load.
A model may provide its own state with ``checkpoint_state_dict()`` and
``load_checkpoint_state_dict(state_dict, strict)``, which returns ``(missing,
unexpected)`` or None to leave a plain state dict to the default path (detectors
do, through :mod:`opentad.models.utils.qlora`: QLoRA models store only the
trainable and floating-point tensors and rebuild the quantized base).

Files are read weights-only (:mod:`opentad.utils.safe_load`): a file that
would need to unpickle other objects is refused, never loaded silently.
Reading a file (:func:`read_checkpoint`, :class:`CheckpointError`) is
:mod:`opentad.utils.checkpoint_file`'s; both are importable from here as before.
:func:`load_weights` initialises a model from any checkpoint layout for
fine-tuning (``--load-from``); resuming needs the full training state.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, NamedTuple, Tuple

import torch
import torch.nn as nn

from opentad.utils.atomic_files import atomic_link, atomic_save, remove_stale_partial_files
from opentad.utils.checkpoint_file import CheckpointError, read_checkpoint
from opentad.utils.misc import unwrap_model
from opentad.utils.safe_load import UnreadableFileError, UntrustedFileError

__all__ = [
    "CheckpointError", "LoadReport", "atomic_save", "atomic_link", "remove_stale_partial_files", "model_state_dict",
    "strip_prefix", "load_model_state", "load_model_state_from", "load_checkpoint", "read_checkpoint",
    "model_weights", "load_weights", "UntrustedFileError", "UnreadableFileError",
]

logger = logging.getLogger(__name__)

PREFIX = "module."


class LoadReport(NamedTuple):
    """Keys the model expected but the checkpoint lacked, keys the model does not have, shape conflicts."""

    missing_keys: List[str]
    unexpected_keys: List[str]
    mismatched: List[str] = []


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
    try:
        result = hook(state, strict=strict) if callable(hook) else None
    except ValueError as exc:  # the model's own loader refused the state (e.g. quantized vs float)
        raise CheckpointError(str(exc)) from None
    if result is not None:  # None: the hook leaves this state to the plain path below
        report = LoadReport(*result)
    else:
        expected = set(inner.state_dict().keys())
        report = LoadReport(sorted(expected - set(state)), sorted(set(state) - expected))
        if strict and (report.missing_keys or report.unexpected_keys):
            raise CheckpointError(
                f"Checkpoint does not match {type(inner).__name__}: "
                f"missing keys [{_format_keys(report.missing_keys)}]; "
                f"unexpected keys [{_format_keys(report.unexpected_keys)}]. The checkpoint was saved from another "
                "model: use the config it was trained with (its run folder, the one above checkpoint/, keeps a copy; "
                "compare e.g. model.rpn_head.num_classes and the backbone); to start a new training run from the "
                "weights that match, use tools/train.py --load-from"
            )
        inner.load_state_dict(state, strict=False)
    if report.missing_keys:
        logger.warning("Missing keys in checkpoint: %s", _format_keys(report.missing_keys))
    if report.unexpected_keys:
        logger.warning("Unexpected keys in checkpoint: %s", _format_keys(report.unexpected_keys))
    return report


def load_weights(
    model: nn.Module, path: str, *, use_ema: bool = False, map_location: Any = "cpu", what: str = "load_from"
) -> LoadReport:
    """Initialise ``model`` from a checkpoint's weights only, for fine-tuning (``load_from``).

    Any layout of :func:`model_weights` is accepted; optimizer, scheduler and
    epoch are ignored. Keys the model lacks, keys the file lacks and tensors
    whose shape differs (e.g. a classification head for another number of
    classes) are left out and logged; everything else is loaded.

    Args:
        model: the built model, DDP-wrapped or not.
        path: the checkpoint file.
        use_ema: prefer the file's EMA weights.
        map_location: where tensors go while loading.
        what: the option that named the file, for messages.

    Returns:
        The report; ``mismatched`` lists ``key: file shape vs model shape``.

    Raises:
        FileNotFoundError, UntrustedFileError, UnreadableFileError: see :func:`read_checkpoint`.
        CheckpointError: no weights in the file, or the model's loader refuses them
            (a QLoRA state into a float model or the reverse).
    """
    checkpoint, state, key = _read_weights(path, use_ema=use_ema, ema_required=False, map_location=map_location,
                                           what=what)
    own = unwrap_model(model).state_dict()
    # an adapter (QLoRA) state keeps the model's plain tensors under "float"; a plain state is that dict itself
    tensors = state["float"] if isinstance(state.get("float"), dict) else state
    conflicts = sorted(
        k for k, v in tensors.items() if isinstance(v, torch.Tensor) and k in own and v.shape != own[k].shape
    )
    mismatched = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}" for k in conflicts]
    for k in conflicts:
        del tensors[k]
    report = load_model_state_from(model, state, strict=False, path=path, what=what)
    report = LoadReport(sorted(set(report.missing_keys) | set(conflicts)), report.unexpected_keys, mismatched)
    if mismatched:
        logger.warning("Shape-mismatched keys (not loaded, left as built): %s", _format_keys(mismatched))
    logger.info(
        "Initialised the model from %s of %s (epoch %s; weights only, no optimizer or scheduler state): "
        "%d missing, %d unexpected, %d shape-mismatched keys.",
        key, path, checkpoint.get("epoch", "?"), len(report.missing_keys), len(report.unexpected_keys), len(mismatched),
    )
    return report


def _read_weights(path: str, *, use_ema: bool, ema_required: bool, map_location: Any, what: str):
    """``(checkpoint, weights without prefix, where they came from)`` of a file (:func:`model_weights`)."""
    checkpoint = read_checkpoint(path, map_location=map_location, what=what)
    state, key = model_weights(checkpoint, path=path, use_ema=use_ema, ema_required=ema_required)
    return checkpoint, strip_prefix(state), key


def load_model_state_from(
    model: nn.Module, state: Mapping[str, Any], *, strict: bool, path: str, what: str
) -> LoadReport:
    """:func:`load_model_state`, its errors (keys that differ, a model's loader refusing the state) naming the file.

    Raises:
        CheckpointError: ``"<what> <path>: <reason>"``.
    """
    try:
        return load_model_state(model, state, strict=strict)
    except (CheckpointError, ValueError) as exc:
        raise CheckpointError(f"{what} {path}: {exc}") from None


def _looks_like_weights(state: Mapping[str, Any]) -> bool:
    return any(isinstance(v, torch.Tensor) for v in state.values()) or any(
        str(k).endswith("format") for k in state
    )


def model_weights(
    checkpoint: Mapping[str, Any], *, path: str, use_ema: bool = False, ema_required: bool = False
) -> Tuple[Dict[str, Any], str]:
    """The model weights of a checkpoint dict, in any layout this project or upstream OpenTAD writes.

    Accepted: ``{"state_dict": ...}`` (a full training state or weights
    only), ``{"state_dict_ema": ...}`` alone, both, or a bare state dict;
    keys with or without DDP's ``module.`` prefix; QLoRA adapter-only states
    (``format``, docs/qlora.md), which the model's own loader reads.

    Args:
        checkpoint: the loaded file.
        path: its name, for messages.
        use_ema: prefer ``state_dict_ema`` (else ``state_dict``, with a warning).
        ema_required: with ``use_ema``, a file with ``state_dict`` but no
            ``state_dict_ema`` is an error instead of a fallback.

    Returns:
        ``(state, key)``: the weights (prefix not yet stripped) and where they
        came from: ``"state_dict"``, ``"state_dict_ema"`` or ``"(file)"``.

    Raises:
        CheckpointError: no weights in the file, or a required EMA state missing.
    """
    has_plain, has_ema = "state_dict" in checkpoint, "state_dict_ema" in checkpoint
    if use_ema and has_ema:
        key = "state_dict_ema"
    elif has_plain:
        if use_ema and ema_required:
            raise CheckpointError(
                f"{path} has no 'state_dict_ema'; it holds {sorted(checkpoint)} "
                "(solver.ema decides which one is loaded)"
            )
        if use_ema:
            logger.warning("%s has no EMA weights (state_dict_ema) although solver.ema is set; using state_dict", path)
        key = "state_dict"
    elif has_ema:
        key = "state_dict_ema"
    elif _looks_like_weights(checkpoint):
        return dict(checkpoint), "(file)"
    else:
        raise CheckpointError(
            f"{path} holds no model weights: no 'state_dict' or 'state_dict_ema' and no tensors "
            f"(keys: {sorted(checkpoint)})"
        )
    state = checkpoint[key]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: {key!r} is a {type(state).__name__}, expected a dict of tensors")
    return dict(state), key


def load_checkpoint(
    model: nn.Module,
    path: str,
    *,
    use_ema: bool = False,
    strict: bool = True,
    map_location: Any = "cpu",
    what: str = "checkpoint",
) -> Dict[str, Any]:
    """Load a checkpoint's model weights (``state_dict``, or ``state_dict_ema`` with ``use_ema``).

    A bare state dict (a file without a ``state_dict`` key) is accepted too.

    Args:
        model: the model to fill.
        path: the checkpoint file (this project's or upstream OpenTAD's).
        use_ema: load the EMA weights.
        strict: see :func:`load_model_state`.
        map_location, what: see :func:`read_checkpoint`.

    Returns:
        The whole checkpoint dict.

    Raises:
        CheckpointError: ``use_ema`` but the file has no ``state_dict_ema``; or a strict mismatch.
        UntrustedFileError, UnreadableFileError: see :func:`read_checkpoint`.
    """
    checkpoint, state, key = _read_weights(path, use_ema=use_ema, ema_required=True, map_location=map_location,
                                           what=what)
    report = load_model_state_from(model, state, strict=strict, path=path, what=what)
    logger.info(
        "Loaded %s from %s (epoch %s): %d missing, %d unexpected keys.",
        key, path, checkpoint.get("epoch", "?"), len(report.missing_keys), len(report.unexpected_keys),
    )
    return checkpoint
