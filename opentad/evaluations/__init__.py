"""Evaluators of detection results (registered in ``opentad.registry.EVALUATORS``)."""
from .builder import build_evaluator, remove_duplicate_annotations
from .mAP import mAP

__all__ = ["build_evaluator", "remove_duplicate_annotations", "mAP"]
