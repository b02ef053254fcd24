"""Key checks of the untyped config sections the engines read: solver, workflow, inference, post_processing.

Each checker is registered with :func:`opentad.utils.config.register_section`,
so :func:`opentad.utils.config.validate_config` reports a misspelled key in
these sections (with the valid keys) before anything is built. The
``optimizer`` and ``scheduler`` checkers live beside their builders.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, List, Mapping

from opentad.utils.config import register_section

__all__ = [
    "SOLVER_KEYS",
    "WORKFLOW_KEYS",
    "INFERENCE_KEYS",
    "POST_PROCESSING_KEYS",
    "AMP_MODES",
    "check_solver",
    "check_workflow",
    "check_inference",
    "check_post_processing",
]

SOLVER_KEYS = ("train", "val", "test", "clip_grad_norm", "ema", "amp", "fp16_compress", "static_graph")
WORKFLOW_KEYS = (
    "logging_interval",
    "checkpoint_interval",
    "val_loss_interval",
    "val_eval_interval",
    "val_start_epoch",
    "end_epoch",
)
INFERENCE_KEYS = ("load_from_raw_predictions", "save_raw_prediction", "test_epoch", "fuse_list")
POST_PROCESSING_KEYS = (
    "nms",
    "save_dict",
    "external_cls",
    "pre_nms_topk",
    "pre_nms_thresh",
    "score_type",
    "proposal",
)
#: values of ``solver.amp``: off, fp16 (True, as upstream), or bf16
AMP_MODES = (False, True, "fp16", "bf16")
#: keys of the loaders' solver entries that the engines set themselves
LOADER_RUNTIME_KEYS = ("dataset", "rank", "world_size", "shuffle", "drop_last", "seed")
ENGINE_KEYS = {"inference": ("folder",), "post_processing": ("sliding_window",)}


def _unknown(value: Any, path: str, allowed: Iterable[str]) -> List[str]:
    if not isinstance(value, Mapping):
        return [f"{path}: expected a dict, got {type(value).__name__}"]
    allowed = list(allowed)
    bad = [k for k in value if k not in allowed]
    return [f"{path}: unknown key(s) {bad}. Valid keys: {allowed}"] if bad else []


def _keyword_names(fn: Callable, drop: Iterable[str]) -> List[str]:
    params = inspect.signature(fn).parameters
    return [n for n, p in params.items() if n not in drop and p.kind is not inspect.Parameter.VAR_KEYWORD]


def _engine_set(value: Mapping[str, Any], path: str, name: str) -> List[str]:
    return [f"{path}.{k}: set by the engine, remove it from the config" for k in ENGINE_KEYS[name] if k in value]


@register_section("solver")
def check_solver(value: Any, path: str) -> List[str]:
    """``solver``: loader settings per split plus ``clip_grad_norm``, ``ema``, ``amp``, DDP options."""
    errors = _unknown(value, path, SOLVER_KEYS)
    if not isinstance(value, Mapping):
        return errors
    from opentad.datasets.builder import build_dataloader

    loader_keys = _keyword_names(build_dataloader, LOADER_RUNTIME_KEYS)
    for split in ("train", "val", "test"):
        if split in value:
            errors.extend(_unknown(value[split], f"{path}.{split}", loader_keys))
    if "amp" in value and value["amp"] not in AMP_MODES:
        errors.append(f"{path}.amp: {value['amp']!r} is not one of {list(AMP_MODES)}")
    return errors


@register_section("workflow")
def check_workflow(value: Any, path: str) -> List[str]:
    """``workflow``: logging / checkpoint / validation intervals and the epoch range."""
    return _unknown(value, path, WORKFLOW_KEYS)


@register_section("inference")
def check_inference(value: Any, path: str) -> List[str]:
    """``inference``: raw-prediction saving / loading, the epoch to test."""
    errors = _unknown(value, path, INFERENCE_KEYS + ENGINE_KEYS["inference"])
    return errors + (_engine_set(value, path, "inference") if isinstance(value, Mapping) else [])


@register_section("post_processing")
def check_post_processing(value: Any, path: str) -> List[str]:
    """``post_processing``: top-level keys, and ``nms`` keys against :func:`batched_nms`."""
    errors = _unknown(value, path, POST_PROCESSING_KEYS + ENGINE_KEYS["post_processing"])
    if not isinstance(value, Mapping):
        return errors
    errors += _engine_set(value, path, "post_processing")
    if "nms" in value and value["nms"] is not None:
        from opentad.models.utils.post_processing import batched_nms

        errors += _unknown(value["nms"], f"{path}.nms", _keyword_names(batched_nms, ("segments", "scores", "labels")))
    return errors
