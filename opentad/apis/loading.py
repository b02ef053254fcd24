"""A trained detector from a config and a checkpoint, for inference and feature extraction.

Differences from what ``tools/test.py`` does, all for running outside the
training set-up:

* Pretrained backbone files (``model.backbone.custom.pretrain``, QLoRA's
  ``adapter_pretrain``) are loaded when they exist, as in training; a missing
  one is skipped when the checkpoint holds every weight (float checkpoints
  always do), with one warning. A QLoRA checkpoint of a pretrained base keeps
  only checksums of the frozen ViT, so its ``pretrain`` file is required.
  The backbone wrapper's "weights are random" warning is dropped while a
  model is built for a checkpoint: the checkpoint replaces those weights.
* Before loading, every tensor's shape is compared with the model's; a
  classification head of another size is reported as a number of classes
  (checkpoint vs ``model.rpn_head.num_classes``), not as a size-mismatch trace.
* With ``solver.ema`` the EMA weights are used, as the test engine does; a
  checkpoint without them falls back to ``state_dict`` with a warning.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import nn

from opentad.models.utils.qlora import needs_pretrained_base, state_tensors
from opentad.registry import DETECTORS, build
from opentad.utils.checkpoint import CheckpointError, load_model_state, model_weights, read_checkpoint, strip_prefix

logger = logging.getLogger(__name__)

__all__ = ["read_model_state", "inference_model_config", "check_state_fits", "load_detector"]


def read_model_state(path: str, *, use_ema: bool) -> Tuple[Dict[str, Any], str, Any]:
    """The model weights of a checkpoint file, ``module.`` prefixes stripped.

    Args:
        path: a checkpoint written by this project or upstream OpenTAD (or a bare state dict).
        use_ema: prefer ``state_dict_ema``.

    Returns:
        ``(state, key, epoch)``: the weights, the checkpoint key they came from
        (``"state_dict"``, ``"state_dict_ema"`` or ``"(file)"``), the epoch or None.

    Raises:
        FileNotFoundError: no file.
        CheckpointError: the file is not a checkpoint dict or holds no weights.
        UntrustedFileError: the file would need full unpickling (refused, nothing of it runs).
        UnreadableFileError: an empty, truncated or text file.
    """
    checkpoint = read_checkpoint(path, map_location="cpu")
    state, key = model_weights(checkpoint, path=path, use_ema=use_ema)  # without EMA weights: state_dict, warned
    return strip_prefix(state), key, checkpoint.get("epoch")


def inference_model_config(
    model_cfg: Mapping[str, Any], state: Mapping[str, Any], *, checkpoint: str
) -> Dict[str, Any]:
    """A copy of ``model_cfg`` without the pretrained files that are missing and not needed.

    Args:
        model_cfg: the config's ``model`` section (not modified).
        state: the checkpoint's model weights (see :func:`read_model_state`).
        checkpoint: its path, for messages.

    Raises:
        FileNotFoundError: a QLoRA checkpoint of a pretrained base whose
            ``pretrain`` file is missing (the frozen ViT cannot be rebuilt).
    """
    cfg = copy.deepcopy(dict(model_cfg))
    backbone = cfg.get("backbone")
    if not isinstance(backbone, dict):
        return cfg
    custom = backbone.get("custom")
    pretrain = custom.get("pretrain") if isinstance(custom, dict) else None
    if pretrain and not os.path.isfile(pretrain):
        if needs_pretrained_base(state):
            raise FileNotFoundError(
                f"{checkpoint} is a QLoRA checkpoint that stores the frozen ViT as checksums only; its pretrained "
                f"weights {pretrain} (model.backbone.custom.pretrain) are needed to rebuild it, and are missing"
            )
        logger.warning(
            "Pretrained backbone file %s (model.backbone.custom.pretrain) not found; not needed: %s holds every weight",
            pretrain, checkpoint,
        )
        custom["pretrain"] = None
    inner = backbone.get("backbone")
    adapter_pretrain = inner.get("adapter_pretrain") if isinstance(inner, dict) else None
    if adapter_pretrain and not os.path.isfile(adapter_pretrain):
        logger.warning("adapter_pretrain %s not found; not needed: %s holds the adapters", adapter_pretrain, checkpoint)
        inner["adapter_pretrain"] = None
    return cfg


def _num_classes_message(key: str, saved: torch.Size, own: torch.Size, checkpoint: str, config: str) -> str:
    return (
        f"{checkpoint} was trained for {saved[0]} classes ({key} {tuple(saved)}), but {config} builds a head for "
        f"{own[0]} (model.rpn_head.num_classes={own[0]}). Use the config the checkpoint was trained with, or "
        f"--cfg-options model.rpn_head.num_classes={saved[0]} with a class map of {saved[0]} names"
    )


def check_state_fits(model: nn.Module, state: Mapping[str, Any], *, checkpoint: str, config: str) -> None:
    """Compare the shape of every checkpoint tensor with the model's before loading.

    Raises:
        CheckpointError: a classification head for another number of classes
            (both numbers named), or other tensors whose shapes differ (listed).
    """
    own = model.state_dict()
    mismatched: List[str] = []
    for key, value in state_tensors(state).items():
        if key not in own or tuple(own[key].shape) == tuple(value.shape):
            continue
        is_head = key.endswith("cls_head.weight") or key.endswith("cls_head.bias")
        if is_head and value.shape[0] != own[key].shape[0]:
            raise CheckpointError(_num_classes_message(key, value.shape, own[key].shape, checkpoint, config))
        mismatched.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}")
    if mismatched:
        shown = "; ".join(mismatched[:10]) + (f"; ... ({len(mismatched) - 10} more)" if len(mismatched) > 10 else "")
        raise CheckpointError(f"{checkpoint} does not fit the model of {config}: {shown}")


class _DropRandomWeightsWarning(logging.Filter):
    """Drops the backbone wrapper's "weights are random" warning: the checkpoint loaded next replaces them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("backbone %s: no pretrain checkpoint given")


@contextlib.contextmanager
def _checkpoint_supplies_weights() -> Iterator[None]:
    wrapper_logger = logging.getLogger("opentad.models.backbones.backbone_wrapper")
    quiet = _DropRandomWeightsWarning()
    wrapper_logger.addFilter(quiet)
    try:
        yield
    finally:
        wrapper_logger.removeFilter(quiet)


def load_detector(
    model_cfg: Mapping[str, Any],
    checkpoint: Optional[str],
    *,
    device: torch.device,
    use_ema: bool = False,
    config: str = "config",
) -> nn.Module:
    """Build the detector of ``model_cfg`` and load ``checkpoint`` into it, in eval mode on ``device``.

    Args:
        model_cfg: the config's ``model`` section (not modified).
        checkpoint: the checkpoint file, or None to keep the built weights
            (pretrained backbone files as configured, the rest random).
        device: where the model goes.
        use_ema: prefer the EMA weights.
        config: the config's path, for messages.

    Raises:
        FileNotFoundError: the checkpoint (or a needed pretrained file) is missing.
        CheckpointError: the checkpoint does not fit the model (shapes, keys,
            quantized vs float); the message names the checkpoint.
        ConfigError: the model config is invalid.
    """
    if checkpoint is None:
        return build(dict(model_cfg), DETECTORS).to(device).eval()
    state, key, epoch = read_model_state(checkpoint, use_ema=use_ema)
    with _checkpoint_supplies_weights():
        model = build(inference_model_config(model_cfg, state, checkpoint=checkpoint), DETECTORS)
    check_state_fits(model, state, checkpoint=checkpoint, config=config)
    try:
        load_model_state(model, state, strict=True)
    except (CheckpointError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint}: {exc}") from exc
    logger.info("Loaded %s of %s (epoch %s)", key, checkpoint, epoch)
    return model.to(device).eval()
