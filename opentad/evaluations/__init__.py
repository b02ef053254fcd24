"""Evaluators of detection results (registered in ``opentad.registry.EVALUATORS``)."""
from .builder import build_evaluator, check_ground_truth, remove_duplicate_annotations
from .io import GroundTruthError
from .mAP import mAP
from .mAP_epic import mAP_EPIC
from .recall import Recall

__all__ = [
    "build_evaluator", "check_ground_truth", "remove_duplicate_annotations", "GroundTruthError", "mAP", "mAP_EPIC",
    "Recall",
]
