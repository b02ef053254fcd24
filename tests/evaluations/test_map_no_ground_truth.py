"""mAP when a class of the class map has no ground truth in the evaluated subset: defined, never NaN.

The rule (``opentad/evaluations/mAP.py``, docs/custom_dataset.md): the classes
are those with ground truth in the subset; a class-map class without any is
left out of the mean and named in ONE warning; a subset without any ground
truth at all is an error (upstream OpenTAD prints NaN, its issue #27).
"""
import logging
import math

import pytest

from opentad.evaluations import GroundTruthError, mAP

CLASS_MAP = ["A", "B", "C", "D", "Ghost"]
# C has ground truth only in training, D only a reversed segment (dropped), Ghost none at all
GROUND_TRUTH = {"database": {
    "v1": {"subset": "validation", "annotations": [
        {"label": "A", "segment": [0, 10]}, {"label": "B", "segment": [20, 30]}, {"label": "D", "segment": [15, 15]}]},
    "v2": {"subset": "validation", "annotations": [{"label": "A", "segment": [40, 50]}]},
    "v3": {"subset": "training", "annotations": [{"label": "C", "segment": [0, 5]}]},
}}
PREDICTIONS = {"results": {
    "v1": [{"label": "A", "segment": [0, 10], "score": 0.9}, {"label": "A", "segment": [60, 70], "score": 0.8},
           {"label": "B", "segment": [20, 30], "score": 0.4}, {"label": "C", "segment": [0, 5], "score": 0.95}],
    "v2": [{"label": "A", "segment": [40, 50], "score": 0.3}],
}}


def _evaluate(**kw):
    return mAP(ground_truth_filename=GROUND_TRUTH, prediction_filename=PREDICTIONS, subset="validation",
               tiou_thresholds=[0.5], **kw)


def test_classes_without_ground_truth_are_left_out_of_the_mean_with_one_warning(caplog):
    """A ranks TP (0.9), FP (0.8), TP (0.3) over 2 actions: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1;
    envelope AP = 1/2 * 1 + 1/2 * 2/3 = 5/6. B: one TP, AP 1. C, D and Ghost have no ground truth in
    'validation': mAP = (5/6 + 1) / 2 = 11/12 (with them as AP-0 classes it would be 11/30; as NaN, NaN)."""
    with caplog.at_level(logging.WARNING, logger="opentad"):
        evaluator = _evaluate(class_map=CLASS_MAP)
        metrics = evaluator.evaluate()
    assert abs(metrics["mAP@0.5"] - 11 / 12) < 1e-12  # a mean of two exact-ish terms: rounding ~1e-16
    assert not any(math.isnan(v) for k, v in metrics.items() if k != "per_class_AP")
    assert sorted(metrics["per_class_AP"]) == ["A", "B"]
    named = [r.getMessage() for r in caplog.records if "no ground-truth action in subset" in r.getMessage()]
    assert len(named) == 1, named
    assert "3 of the 5 classes" in named[0] and "['C', 'D', 'Ghost']" in named[0] and "'validation'" in named[0]
    assert "left out of the mean" in named[0] and "the 2 classes with ground truth" in named[0]


def test_without_class_map_the_mean_is_the_same_and_nothing_is_named(caplog):
    with caplog.at_level(logging.WARNING, logger="opentad"):
        metrics = _evaluate().evaluate()
    assert abs(metrics["mAP@0.5"] - 11 / 12) < 1e-12
    assert not [r for r in caplog.records if "classes of the class map" in r.getMessage()]


def test_a_subset_without_any_ground_truth_is_an_error_not_nan():
    with pytest.raises(GroundTruthError, match="no ground-truth action in subset 'test'"):
        mAP(ground_truth_filename=GROUND_TRUTH, prediction_filename=PREDICTIONS, subset="test",
            tiou_thresholds=[0.5], class_map=CLASS_MAP)
