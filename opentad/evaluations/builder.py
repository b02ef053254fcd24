"""Building evaluators from configs, and the ground-truth clean-up they share."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

from opentad.registry import EVALUATORS, build

__all__ = ["build_evaluator", "remove_duplicate_annotations"]


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
