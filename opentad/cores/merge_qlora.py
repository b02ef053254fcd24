"""Fold a QLoRA-AdaTAD checkpoint into a plain AdaTAD checkpoint.

The QLoRA detector is rebuilt from its config, the checkpoint (and its EMA
weights) loaded, and every LoRA update folded into its dequantized
projection (:func:`opentad.models.utils.qlora.merged_state_dict`). The file
written loads into the AdaTAD config of the same ViT (``type=
"VisionTransformerAdapter"``) and into upstream OpenTAD with no missing or
unexpected key.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Mapping

from opentad.models.utils.qlora import has_quantized_layers, merged_state_dict
from opentad.registry import DETECTORS, build
from opentad.utils.checkpoint import PREFIX, atomic_save, load_model_state, read_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["merge_qlora_checkpoint"]


def merge_qlora_checkpoint(model_cfg: Mapping[str, Any], checkpoint: str, out: str) -> Dict[str, int]:
    """Write the merged checkpoint of ``checkpoint`` to ``out``.

    Args:
        model_cfg: the ``model`` section of the QLoRA config the checkpoint was trained with.
        checkpoint: the QLoRA checkpoint file.
        out: where to write ``{"state_dict", "state_dict_ema"?, "meta"}``.

    Returns:
        ``{state key: number of tensors written}``.

    Raises:
        ValueError: the config's model has no quantized layer (nothing to merge).
    """
    model = build(model_cfg, DETECTORS)
    if not has_quantized_layers(model):
        raise ValueError(f"the model of this config has no quantized layer; {checkpoint} needs no merging")
    source = read_checkpoint(checkpoint)
    merged: Dict[str, Any] = {"meta": {"merged_from": checkpoint, "epoch": source.get("epoch")}}
    counts = {}
    for key in ("state_dict", "state_dict_ema"):
        if key not in source:
            continue
        load_model_state(model, source[key], strict=True)
        tensors = merged_state_dict(model)
        merged[key] = {PREFIX + name: value for name, value in tensors.items()}
        counts[key] = len(tensors)
        logger.info("%s: folded LoRA into %d tensors", key, len(tensors))
    atomic_save(merged, out)
    logger.info("wrote the merged AdaTAD checkpoint to %s", out)
    return counts
