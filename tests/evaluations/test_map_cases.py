"""Hand-worked mAP cases; each expected value is derived in the comment above it."""
import json
import logging

import pytest

from opentad.evaluations import build_evaluator, mAP
from opentad.registry import EVALUATORS, ConfigError, build


def gt_db(videos, subset="validation"):
    """videos: {name: [(start, end, label), ...]} -> ground-truth dict."""
    return {
        "database": {
            name: {"subset": subset, "annotations": [{"segment": [s, e], "label": lab} for s, e, lab in anns]}
            for name, anns in videos.items()
        }
    }


def preds(videos):
    """videos: {name: [(start, end, label, score), ...]} -> prediction dict."""
    return {
        "results": {
            name: [{"segment": [s, e], "label": lab, "score": p} for s, e, lab, p in items]
            for name, items in videos.items()
        }
    }


def evaluate(gt, pred, thresholds=(0.5,), **kw):
    ev = mAP(ground_truth_filename=gt, prediction_filename=pred, subset="validation",
             tiou_thresholds=list(thresholds), **kw)
    return ev, ev.evaluate()


TWO_GT = gt_db({"v": [(0.0, 10.0, "A"), (20.0, 30.0, "A")]})


def test_perfect_predictions_give_one():
    gt = gt_db({"v1": [(0, 10, "A"), (20, 30, "B")], "v2": [(5, 9, "A")]})
    pred = preds({"v1": [(0, 10, "A", 0.9), (20, 30, "B", 0.3)], "v2": [(5, 9, "A", 0.5)]})
    _, m = evaluate(gt, pred, thresholds=(0.3, 0.5, 0.95))
    assert m["average_mAP"] == 1.0
    assert m["mAP@0.95"] == 1.0
    assert m["per_class_AP"]["B"]["average"] == 1.0


def test_duplicate_detection_is_a_false_positive():
    # Ranked: TP (g1), duplicate of g1 -> FP, TP (g2).
    # precision 1, 1/2, 2/3; recall 1/2, 1/2, 1. Envelope at the recall steps:
    # max(1, 1/2, 2/3) = 1 at recall 1/2, 2/3 at recall 1.
    # AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    pred = preds({"v": [(0, 10, "A", 0.9), (0, 10, "A", 0.8), (20, 30, "A", 0.7)]})
    _, m = evaluate(TWO_GT, pred)
    assert m["mAP@0.5"] == pytest.approx(5 / 6, abs=1e-12)


def test_a_miss_halves_recall():
    # One perfect detection out of two actions: precision 1 up to recall 1/2, AP = 1/2.
    _, m = evaluate(TWO_GT, preds({"v": [(0, 10, "A", 0.9)]}))
    assert m["mAP@0.5"] == pytest.approx(0.5, abs=1e-12)


def test_false_positive_ranked_first():
    # FP, TP, TP: precision 0, 1/2, 2/3 at recall 0, 1/2, 1 -> envelope 2/3 at both steps, AP = 2/3.
    pred = preds({"v": [(40, 50, "A", 0.9), (0, 10, "A", 0.8), (20, 30, "A", 0.7)]})
    _, m = evaluate(TWO_GT, pred)
    assert m["mAP@0.5"] == pytest.approx(2 / 3, abs=1e-12)


def test_tiou_equal_to_threshold_matches():
    # gt [0, 2], prediction [0, 1]: tIoU = 1/2 exactly; a match at 0.5 (>=), not at 0.6.
    gt = gt_db({"v": [(0.0, 2.0, "A")]})
    _, m = evaluate(gt, preds({"v": [(0.0, 1.0, "A", 1.0)]}), thresholds=(0.5, 0.6))
    assert (m["mAP@0.5"], m["mAP@0.6"]) == (1.0, 0.0)


def test_empty_predictions_give_zero():
    ev, m = evaluate(TWO_GT, {"results": {}}, thresholds=(0.3, 0.7), top_k=[1])
    assert m["average_mAP"] == 0.0 and m["mAP@0.3"] == 0.0 and m["recall@0.7@1"] == 0.0
    assert len(ev.prediction.label) == 0


def test_class_without_predictions_counts_zero_and_class_without_gt_is_ignored():
    # A is perfect, B has no prediction (AP 0): mAP = (1 + 0) / 2. Predictions of a
    # label absent from ground truth ("Ghost") are not evaluated and change nothing.
    gt = gt_db({"v": [(0, 10, "A"), (20, 30, "B")]})
    pred = preds({"v": [(0, 10, "A", 0.9), (20, 30, "Ghost", 0.99)]})
    ev, m = evaluate(gt, pred)
    assert m["mAP@0.5"] == 0.5
    assert ev.ground_truth.classes == ["A", "B"] and "Ghost" not in m["per_class_AP"]


def test_equal_scores_keep_input_order():
    # Scores tie. TP listed first: TP, FP -> AP 1. FP listed first: FP, TP -> precision 1/2 at recall 1.
    gt = gt_db({"v": [(0, 10, "A")]})
    tp, fp = (0, 10, "A", 0.5), (50, 60, "A", 0.5)
    assert evaluate(gt, preds({"v": [tp, fp]}))[1]["mAP@0.5"] == 1.0
    assert evaluate(gt, preds({"v": [fp, tp]}))[1]["mAP@0.5"] == 0.5
    # Across videos the order is that of the `results` dict.
    gt2 = gt_db({"a": [(0, 10, "A")], "b": [(0, 10, "A")]})
    first = preds({"a": [(0, 10, "A", 0.5)], "b": [(30, 40, "A", 0.5), (0, 10, "A", 0.1)]})
    # TP(a), FP(b), TP(b): AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    assert evaluate(gt2, first)[1]["mAP@0.5"] == pytest.approx(5 / 6, abs=1e-12)


def test_equal_tiou_takes_the_earlier_ground_truth():
    # p1 [5, 15] has tIoU 1/3 with both g1 [0, 10] and g2 [10, 20]; it takes the one
    # listed first. p2 [0, 10] only overlaps g1 (tIoU 1; with g2 it is 0).
    # Order g1, g2: p1 -> g1, p2 -> FP: precision 1 at recall 1/2 -> AP 1/2.
    # Order g2, g1: p1 -> g2, p2 -> g1: AP 1.
    pred = preds({"v": [(5, 15, "A", 0.9), (0, 10, "A", 0.8)]})
    g1, g2 = (0, 10, "A"), (10, 20, "A")
    assert evaluate(gt_db({"v": [g1, g2]}), pred, thresholds=(0.3,))[1]["mAP@0.3"] == 0.5
    assert evaluate(gt_db({"v": [g2, g1]}), pred, thresholds=(0.3,))[1]["mAP@0.3"] == 1.0


def test_a_refused_prediction_moves_to_its_next_ground_truth():
    # g1 [0,10], g2 [10,20], g3 [12,22]. pa [0,10] .9 -> g1. pb [4,15] .8: tIoU .4 with g1
    # (taken), 5/16 with g2 -> g2 at 0.3. pc [10,20] .7: g2 taken, g3 (tIoU 8/12) -> TP.
    # At 0.3 all three match: AP 1. At 0.5 pb is a FP and pc takes g2: TP, FP, TP with
    # 3 actions: AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
    gt = gt_db({"v": [(0, 10, "A"), (10, 20, "A"), (12, 22, "A")]})
    pred = preds({"v": [(0, 10, "A", 0.9), (4, 15, "A", 0.8), (10, 20, "A", 0.7)]})
    _, m = evaluate(gt, pred, thresholds=(0.3, 0.5))
    assert m["mAP@0.3"] == pytest.approx(1.0, abs=1e-12)
    assert m["mAP@0.5"] == pytest.approx(5 / 9, abs=1e-12)


def test_subset_filter_and_videos_outside_it():
    # The training video's action is not ground truth; its (higher-scored) prediction
    # is a false positive: FP, TP -> AP 1/2.
    gt = gt_db({"val": [(0, 10, "A")]})
    gt["database"]["train"] = {"subset": "training", "annotations": [{"segment": [0, 10], "label": "A"}]}
    pred = preds({"train": [(0, 10, "A", 0.9)], "val": [(0, 10, "A", 0.8)]})
    ev, m = evaluate(gt, pred)
    assert len(ev.ground_truth.label) == 1 and m["mAP@0.5"] == 0.5


def test_ambiguous_is_not_a_class_unless_asked():
    # THUMOS "Ambiguous" marks are dropped: one class, AP 1. With ignored_labels=()
    # (upstream's literal behaviour) it becomes a class without predictions: (1 + 0) / 2.
    gt = gt_db({"v": [(0, 10, "A"), (20, 30, "Ambiguous")]})
    pred = preds({"v": [(0, 10, "A", 0.9)]})
    assert evaluate(gt, pred)[1]["mAP@0.5"] == 1.0
    assert evaluate(gt, pred, ignored_labels=())[1]["mAP@0.5"] == 0.5


def test_blocked_videos_leave_ground_truth_and_predictions(tmp_path):
    gt = gt_db({"a": [(0, 10, "A")], "b": [(0, 10, "A")]})
    pred = preds({"a": [(0, 10, "A", 0.9)], "b": [(50, 60, "A", 0.95)]})
    # Unblocked: FP (b), TP (a) with two actions: precision 1/2 at recall 1/2 -> AP 1/4.
    assert evaluate(gt, pred)[1]["mAP@0.5"] == 0.25
    (tmp_path / "blocked.json").write_text(json.dumps(["b"]))
    ev, m = evaluate(gt, pred, blocked_videos=str(tmp_path / "blocked.json"))
    assert m["mAP@0.5"] == 1.0 and len(ev.prediction.label) == 1


def test_duplicate_and_empty_ground_truth_are_dropped():
    # The second action repeats the first within 1e-3 s, the third has zero length:
    # one action remains, so one perfect detection gives AP 1 (not 1/3).
    gt = gt_db({"v": [(0.0, 10.0, "A"), (0.0005, 10.0009, "A"), (5.0, 5.0, "A")]})
    ev, m = evaluate(gt, preds({"v": [(0, 10, "A", 0.9)]}))
    assert len(ev.ground_truth.label) == 1 and m["mAP@0.5"] == 1.0


def test_topkx_recall():
    # Two actions; predictions by rank: two on g1, then one on g2.
    # k=1 keeps the top 1*2 = 2 predictions -> only g1 found: 1/2. k=2 keeps 4 -> 1.
    pred = preds({"v": [(0, 10, "A", 0.9), (0, 9, "A", 0.8), (20, 30, "A", 0.7)]})
    _, m = evaluate(TWO_GT, pred, top_k=[1, 2])
    assert (m["recall@0.5@1"], m["recall@0.5@2"]) == (0.5, 1.0)


def test_logging_prints_the_table(caplog):
    ev, _ = evaluate(TWO_GT, preds({"v": [(0, 10, "A", 0.9)]}), thresholds=(0.3, 0.5))
    log = logging.getLogger("test_map_table")
    with caplog.at_level(logging.INFO, logger="test_map_table"):
        ev.logging(log)
    text = caplog.text
    assert "Average-mAP: 50.00 (%)" in text
    assert "mAP at tIoU 0.30 is 50.00%" in text and "mAP at tIoU 0.50 is 50.00%" in text
    assert "Number of ground truth instances: 2" in text


def test_logging_before_evaluate_raises():
    ev = mAP(ground_truth_filename=TWO_GT, prediction_filename={"results": {}}, subset="validation",
             tiou_thresholds=[0.5])
    with pytest.raises(RuntimeError, match="evaluate"):
        ev.logging()


def test_built_from_config_like_upstream():
    cfg = dict(type="mAP", subset="validation", tiou_thresholds=[0.3, 0.5], ground_truth_filename=TWO_GT, thread=8)
    ev = build_evaluator(dict(prediction_filename=preds({"v": [(0, 10, "A", 1.0)]}), **cfg))
    assert isinstance(ev, mAP) and ev.evaluate()["mAP@0.3"] == 0.5
    with pytest.raises(ConfigError, match="subsett"):
        build(dict(cfg, subsett="test", prediction_filename={"results": {}}), EVALUATORS)
