"""Building evaluators from configs, and the ground-truth clean-up they share."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from opentad.registry import EVALUATORS, build

__all__ = ["build_evaluator", "check_ground_truth", "remove_duplicate_annotations"]


def build_evaluator(cfg: Mapping[str, Any], **default_args: Any) -> Any:
    """Build an evaluator (e.g. ``mAP``) from its config.

    A thin wrapper over :func:`opentad.registry.build` kept for upstream
    OpenTAD's ``build_evaluator(dict(prediction_filename=..., **cfg.evaluation))``.

    Args:
        cfg: the config mapping with a ``type`` key.
        **default_args: values for keys the config leaves out.

    Raises:
        ConfigError: unknown type or keys that do not bind.
    """
    return build(cfg, EVALUATORS, **default_args)


def check_ground_truth(cfg: Optional[Mapping[str, Any]], *, class_map: Optional[Sequence[str]] = None) -> None:
    """Check the ground truth of an ``evaluation`` section at set-up, not after training.

    Runs the evaluator's ``check_ground_truth(**keys)`` classmethod when it has
    one (``mAP`` does): the file is read and checked as the evaluation will
    (labels against the class map, structure, subset).

    Args:
        cfg: the ``evaluation`` section, or None (nothing to check).
        class_map: the test dataset's class names, used unless the section sets ``class_map``
            (as the test engine does).

    Raises:
        FileNotFoundError, GroundTruthError, ValueError: the evaluator's own errors, naming the file.
    """
    if cfg is None or "type" not in cfg:
        return
    cls = EVALUATORS.get(cfg["type"]) if isinstance(cfg["type"], str) else cfg["type"]
    check = getattr(cls, "check_ground_truth", None)
    if check is None:  # unknown type (reported when it is built) or an evaluator without the check
        return
    keys = {key: value for key, value in cfg.items() if key != "type"}
    if class_map is not None and "class_map" not in keys:
        keys["class_map"] = list(class_map)
    check(**keys)


def remove_duplicate_annotations(annotations: Sequence[Mapping[str, Any]], tol: float = 1e-3) -> List[Dict[str, Any]]:
    """Drop empty and duplicated ground-truth actions of one video.

    An action is dropped when its duration ``end - start`` is not positive,
    or when an action already kept has the same label and both boundaries
    within ``tol`` seconds of it. Actions are visited in the given order, so
    the first of a group of duplicates is the one kept (and the comparison is
    only against kept actions, as upstream OpenTAD does).

    Args:
        annotations: ``[{"segment": [start, end], "label": name, ...}, ...]``.
        tol: the boundary tolerance in seconds.

    Returns:
        The kept annotations (the same dict objects), in their original order.
    """
    kept: List[Dict[str, Any]] = []
    kept_by_label: Dict[Any, List[tuple]] = {}
    for ann in annotations:
        start, end = ann["segment"][0], ann["segment"][1]
        if end - start <= 0:
            continue
        same_label = kept_by_label.setdefault(ann["label"], [])
        if any(abs(start - s) <= tol and abs(end - e) <= tol for s, e in same_label):
            continue
        same_label.append((start, end))
        kept.append(ann)
    return kept
