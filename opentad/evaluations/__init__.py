"""Evaluators of detection results (registered in ``opentad.registry.EVALUATORS``)."""
from .builder import build_evaluator, check_ground_truth, remove_duplicate_annotations
from .io import GroundTruthError
from .mAP import mAP

__all__ = ["build_evaluator", "check_ground_truth", "remove_duplicate_annotations", "GroundTruthError", "mAP"]
