"""Key and value checks of the untyped config sections the engines read: solver, workflow, inference, post_processing.

Each checker is registered with :func:`opentad.utils.config.register_section`,
so :func:`opentad.utils.config.validate_config` reports a misspelled key in
these sections (with the valid keys), or a value of the wrong type (with the
key, the value and the expected type), before anything is built. Value types
are those the consumers state: their annotations (``build_dataloader``,
``batched_nms``, ``select_topk_predictions``) or :data:`VALUE_TYPES`. The
``optimizer`` and ``scheduler`` checkers live beside their builders.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Iterable, List, Mapping, Sequence

from opentad.registry import type_errors
from opentad.utils.config import register_section
from opentad.utils.typecheck import check_value, describe

__all__ = [
    "SOLVER_KEYS",
    "WORKFLOW_KEYS",
    "INFERENCE_KEYS",
    "POST_PROCESSING_KEYS",
    "AMP_MODES",
    "VALUE_TYPES",
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
#: the types the engines read these keys as (runner.py, test_engine.py, raw_predictions.py)
VALUE_TYPES: Dict[str, Dict[str, Any]] = {
    "solver": dict(clip_grad_norm=float, ema=bool, fp16_compress=bool, static_graph=bool),
    "workflow": {key: int for key in WORKFLOW_KEYS},
    "inference": dict(
        load_from_raw_predictions=bool, save_raw_prediction=bool, test_epoch=int, fuse_list=Sequence[str]
    ),
    "post_processing": dict(save_dict=bool),
}
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


def _values(value: Any, path: str, name: str) -> List[str]:
    """Values of section ``name`` that do not fit :data:`VALUE_TYPES`."""
    if not isinstance(value, Mapping):
        return []
    errors = []
    for key, annotation in VALUE_TYPES[name].items():
        if key in value and not check_value(value[key], annotation):
            errors.append(
                f"{path}.{key} = {value[key]!r} ({type(value[key]).__name__}): expected {describe(annotation)}"
            )
    return errors


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
            split_errors = _unknown(value[split], f"{path}.{split}", loader_keys)
            if not split_errors:
                split_errors = type_errors(build_dataloader, value[split], path=f"{path}.{split}")
            errors.extend(split_errors)
    errors.extend(_values(value, path, "solver"))
    if "amp" in value and value["amp"] not in AMP_MODES:
        errors.append(f"{path}.amp: {value['amp']!r} is not one of {list(AMP_MODES)}")
    return errors


@register_section("workflow")
def check_workflow(value: Any, path: str) -> List[str]:
    """``workflow``: logging / checkpoint / validation intervals and the epoch range (ints)."""
    return _unknown(value, path, WORKFLOW_KEYS) + _values(value, path, "workflow")


@register_section("inference")
def check_inference(value: Any, path: str) -> List[str]:
    """``inference``: raw-prediction saving / loading, the epoch to test."""
    errors = _unknown(value, path, INFERENCE_KEYS + ENGINE_KEYS["inference"]) + _values(value, path, "inference")
    return errors + (_engine_set(value, path, "inference") if isinstance(value, Mapping) else [])


@register_section("post_processing")
def check_post_processing(value: Any, path: str) -> List[str]:
    """``post_processing``: top-level keys, and ``nms`` keys against :func:`batched_nms`."""
    errors = _unknown(value, path, POST_PROCESSING_KEYS + ENGINE_KEYS["post_processing"])
    if not isinstance(value, Mapping):
        return errors
    errors += _engine_set(value, path, "post_processing") + _values(value, path, "post_processing")
    from opentad.models.utils.post_processing import batched_nms
    from opentad.models.utils.post_processing.utils import select_topk_predictions

    errors += type_errors(select_topk_predictions, value, path=path)
    if "nms" in value and value["nms"] is not None:
        nms_keys = _keyword_names(batched_nms, ("segments", "scores", "labels"))
        nms_errors = _unknown(value["nms"], f"{path}.nms", nms_keys)
        errors += nms_errors or type_errors(batched_nms, value["nms"], path=f"{path}.nms")
    return errors
