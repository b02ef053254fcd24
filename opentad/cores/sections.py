"""The untyped config sections the engines read: solver, workflow, inference, post_processing.

Each section is a dataclass whose fields are its keys, annotated with the
types the engines read them as (``runner.py``, ``trainer.py``, ``test_engine.py``,
``raw_predictions.py``). Its checker, registered under the section's name in
:data:`opentad.registry.CONFIG_SECTIONS`, checks the keys and values with
:func:`opentad.utils.binding.check_binding`, the one check ``build`` uses too;
nested dicts whose keys a function takes are checked against that function
(each loader of ``solver`` against ``build_dataloader``, ``post_processing.nms``
against ``batched_nms``, ``post_processing.external_cls`` against its
classifier). Keys the engine sets itself are refused by name.
The ``optimizer`` and ``scheduler`` checkers live beside their builders.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Literal, Mapping, Optional, Sequence, Tuple

from opentad.datasets.builder import build_dataloader
from opentad.models.utils.post_processing import batched_nms
from opentad.registry import CLASSIFIERS, CONFIG_SECTIONS, check_binding

__all__ = ["Solver", "Workflow", "Inference", "PostProcessing", "check_section"]

#: keys of the loaders' solver entries that the engines set themselves
LOADER_RUNTIME_KEYS = ("dataset", "rank", "world_size", "shuffle", "drop_last", "seed")
Nested = Mapping[str, Tuple[Callable, Sequence[str]]]


@dataclass
class Solver:
    """``solver``: loader settings per split (keys of ``build_dataloader``), gradient clipping, EMA, AMP, DDP."""

    train: Mapping[str, Any]
    val: Mapping[str, Any]
    test: Mapping[str, Any]
    clip_grad_norm: float
    ema: bool
    amp: Literal[False, True, "fp16", "bf16"]  # off, fp16 (True, as upstream), or bf16
    fp16_compress: bool
    static_graph: bool


@dataclass
class Workflow:
    """``workflow``: logging / checkpoint / validation intervals and the epoch range."""

    logging_interval: int
    checkpoint_interval: int
    val_loss_interval: int
    val_eval_interval: int
    val_start_epoch: int
    end_epoch: int


@dataclass
class Inference:
    """``inference``: raw-prediction saving / loading, the epoch to test (``folder`` is set by the engine)."""

    load_from_raw_predictions: bool
    save_raw_prediction: bool
    test_epoch: int
    fuse_list: Sequence[str]


@dataclass
class PostProcessing:
    """``post_processing``: NMS (keys of ``batched_nms``), the pre-NMS filter (``sliding_window``: the engine's)."""

    nms: Optional[Mapping[str, Any]]
    save_dict: bool
    external_cls: Optional[Mapping[str, Any]]
    pre_nms_topk: int
    pre_nms_thresh: float
    score_type: Any
    proposal: Any


def check_section(
    schema: Callable,
    value: Any,
    path: str,
    *,
    engine: Sequence[str] = (),
    nested: Optional[Nested] = None,
    partial: bool = True,
) -> List[str]:
    """Problems of a config section: its keys and values against ``schema``, then its nested dicts.

    Args:
        schema: a dataclass (or function) whose keywords are the section's keys.
        value: the section.
        path: its config path, named in the messages.
        engine: keywords of ``schema`` that the engine gives: refused in the config, named.
        nested: ``{key: (function, engine keys)}``: dicts under ``key`` are checked against ``function``.
        partial: if False, the keywords ``schema`` requires must be given.

    Returns:
        One-line messages (empty when the section is sound).
    """
    if not isinstance(value, Mapping):
        return [check_binding(schema, value, path=path)]
    errors = [f"{path}.{k}: set by the engine, remove it from the config" for k in engine if k in value]
    rest = {k: v for k, v in value.items() if k not in engine}
    problem = check_binding(schema, rest, path=path, partial=partial, exclude=engine)
    if problem:
        return errors + [problem]
    for key, (function, function_engine) in (nested or {}).items():
        if value.get(key) is not None:
            errors += check_section(function, value[key], f"{path}.{key}", engine=function_engine)
    return errors


def _register(name: str, schema: Callable, *, engine: Sequence[str] = (), nested: Optional[Nested] = None) -> None:
    def check(value: Any, path: str) -> List[str]:
        return check_section(schema, value, path, engine=engine, nested=nested)

    CONFIG_SECTIONS.register_module(name=name, module=check)


_register(
    "solver", Solver, nested={split: (build_dataloader, LOADER_RUNTIME_KEYS) for split in ("train", "val", "test")})
_register("workflow", Workflow)
_register("inference", Inference, engine=("folder",))


def _check_external_cls(value: Any, path: str) -> List[str]:
    """``post_processing.external_cls``: None, or a dict whose ``type`` is a classifier and whose keys bind to it."""
    if value is None:
        return []
    if "type" not in value:
        return [f"{path}: expected dict(type=<classifier>, ...) or None; the classifiers: {CLASSIFIERS.names()}"]
    cls = CLASSIFIERS.get(value["type"])
    if cls is None:
        return [f"{path}: unknown external classifier {value['type']!r}; the classifiers: {CLASSIFIERS.names()}"]
    problem = check_binding(cls, {k: v for k, v in value.items() if k != "type"}, path=path)
    return [problem] if problem else []


def _check_post_processing(value: Any, path: str) -> List[str]:
    errors = check_section(PostProcessing, value, path, engine=("sliding_window",),
                           nested={"nms": (batched_nms, ("segments", "scores", "labels"))})
    if errors or not isinstance(value, Mapping):
        return errors
    return _check_external_cls(value.get("external_cls"), f"{path}.external_cls")


CONFIG_SECTIONS.register_module(name="post_processing", module=_check_post_processing)
