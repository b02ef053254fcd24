"""``mAP_EPIC`` against a brute-force reference written here, hand-worked cases and bad inputs.

The reference applies the rules of ``opentad/evaluations/mAP_epic.py`` with
plain loops: every action of the subset kept (duplicates and ``end <= start``
ones too), classes = the task's ids present in the ground truth, predictions of
a class sorted by decreasing score (ties in input order), each taking the
unmatched ground truth of its video with the highest tIoU >= threshold
(ties: file order), and the ActivityNet interpolated AP.

Error model: true and false positive counts are integers on both sides;
precision and recall are one correctly rounded division each and the envelope
is a maximum (exact), so each AP term ``step * envelope`` differs by at most
``3 eps`` (two roundings of ``step``, one of the product) and a sum of ``n + 1``
terms in [0, 1] re-ordered or not by at most ``(n + 1) * eps`` more; the bound
used is ``(n + 1) * 4 * eps`` for a class with ``n`` predictions (the mean over
classes adds no more than its largest term).
"""
import json
import logging
import random

import numpy as np
import pytest

from opentad.evaluations import GroundTruthError, check_ground_truth, mAP, mAP_EPIC
from opentad.registry import EVALUATORS, ConfigError, build

EPS = np.finfo(np.float64).eps
THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5]  # upstream's EPIC configs
VERBS, NOUNS = 6, 8


def ref_tiou(ps, pe, gs, ge):
    inter = max(min(pe, ge) - max(ps, gs), 0.0)
    union = (ge - gs) + (pe - ps) - inter
    return inter / max(union, 1e-8)


def ref_gt_class(ann, task):
    verb, noun = int(ann["verb_label"][3:]), int(ann["noun_label"][3:])
    return {"verb": verb, "noun": noun, "action": verb * NOUNS + noun}[task]


def ref_pred_class(item, task):
    verb, noun = (int(x) for x in item["action"].split(","))
    return {"verb": item["verb"], "noun": item["noun"], "action": verb * NOUNS + noun}[task]


def ref_interpolated_ap(flags, npos):
    tp = fp = 0
    prec, rec = [], []
    for flag in flags:
        tp, fp = tp + flag, fp + 1 - flag
        prec.append(tp / (tp + fp))
        rec.append(tp / npos)
    mprec, mrec = [0.0] + prec + [0.0], [0.0] + rec + [1.0]
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mprec[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def reference(database, results, task, subset="val"):
    """{class id: ([AP per threshold], number of predictions)}."""
    gts = [(v, float(a["segment"][0]), float(a["segment"][1]), ref_gt_class(a, task))
           for v, info in database.items() if info["subset"] == subset for a in info["annotations"]]
    preds = [(v, float(p["segment"][0]), float(p["segment"][1]), ref_pred_class(p, task), p["score"])
             for v, items in results.items() for p in items]
    out = {}
    for cls in sorted({g[3] for g in gts}):
        class_gts = [g for g in gts if g[3] == cls]
        ranked = sorted([p for p in preds if p[3] == cls], key=lambda p: -p[4])
        aps = []
        for thr in THRESHOLDS:
            matched, flags = set(), []
            for video, ps, pe, _, _ in ranked:
                cands = sorted(((ref_tiou(ps, pe, g[1], g[2]), j) for j, g in enumerate(class_gts) if g[0] == video),
                               key=lambda c: (-c[0], c[1]))
                hit = 0
                for iou, j in cands:
                    if iou < thr:
                        break
                    if j not in matched:
                        matched.add(j)
                        hit = 1
                        break
                flags.append(hit)
            aps.append(ref_interpolated_ap(flags, len(class_gts)))
        out[cls] = (aps, len(ranked))
    return out


def random_case(rng, *, videos):
    database, results = {}, {}
    for v in range(videos):
        anns = []
        for _ in range(rng.randint(0, 8)):
            s = rng.randint(0, 80) / 2
            verb, noun = rng.randrange(VERBS), rng.randrange(NOUNS)
            anns.append({"segment": [s, s + rng.randint(-2, 30) / 2], "label": "x",
                         "verb_label": f"id_{verb:03d}", "noun_label": f"id_{noun:03d}"})
        if anns and rng.random() < 0.3:
            anns.append(dict(anns[0]))  # an exact duplicate: kept by EPIC's rules
        database[f"v{v}"] = {"subset": "val" if rng.random() < 0.85 else "train", "annotations": anns}
        preds = []
        for _ in range(rng.randint(0, 40)):
            if anns and rng.random() < 0.6:
                src = rng.choice(anns)
                s, e = src["segment"][0] + rng.randint(-3, 3) / 2, src["segment"][1] + rng.randint(-3, 3) / 2
                verb, noun = int(src["verb_label"][3:]), int(src["noun_label"][3:])
            else:
                s = rng.randint(0, 80) / 2
                e, verb, noun = s + rng.randint(1, 30) / 2, rng.randrange(VERBS), rng.randrange(NOUNS)
            preds.append({"segment": [s, e], "verb": verb, "noun": noun, "action": f"{verb},{noun}",
                          "score": rng.randint(0, 6) / 6})
        results[f"v{v}"] = preds
    return {"database": database}, {"results": results}


@pytest.mark.parametrize("seed", range(45))
def test_random_cases_match_the_reference(seed):
    rng = random.Random(seed)
    task = ["verb", "noun", "action"][seed % 3]
    gt, pred = random_case(rng, videos=rng.randint(1, 10))
    expected = reference(gt["database"], pred["results"], task)
    if not expected:
        pytest.skip("this seed drew no action in the subset")
    ev = mAP_EPIC(ground_truth_filename=gt, prediction_filename=pred, subset="val", tiou_thresholds=THRESHOLDS,
                  task=task, verb_classes=VERBS, noun_classes=NOUNS)
    metrics = ev.evaluate()
    assert sorted(metrics["per_class_AP"]) == sorted(expected)
    for cls, (aps, n) in expected.items():
        got = [metrics["per_class_AP"][cls][f"AP@{t}"] for t in THRESHOLDS]
        assert np.all(np.abs(np.array(got) - aps) <= (n + 1) * 4 * EPS), (cls, got, aps)
    bound = max((n + 1) * 4 * EPS for _, n in expected.values())
    for t, thr in enumerate(THRESHOLDS):
        assert abs(metrics[f"mAP@{thr}"] - np.mean([aps[t] for aps, _ in expected.values()])) <= 2 * bound


GT = {"database": {"v": {"subset": "val", "annotations": [
    {"segment": [0, 10], "verb_label": "id_001", "noun_label": "id_002", "label": "take"},
    {"segment": [0, 10], "verb_label": "id_001", "noun_label": "id_003", "label": "take"},
]}}}
PRED = {"results": {"v": [
    {"segment": [0, 10], "verb": 1, "noun": 2, "action": "1,2", "score": 0.9},
    {"segment": [20, 30], "verb": 1, "noun": 3, "action": "1,3", "score": 0.8},
]}}


@pytest.mark.parametrize("task, per_class", [
    # verb: one class (1) with 2 actions; the first prediction finds one, the second misses: P = (1, 1/2),
    # R = (1/2, 1/2) -> AP 1/2. noun: class 2 found (AP 1), class 3 missed (AP 0). action (5 nouns): 1*5+2 = 7
    # found, 1*5+3 = 8 missed.
    ("verb", {1: 0.5}), ("noun", {2: 1.0, 3: 0.0}), ("action", {7: 1.0, 8: 0.0}),
])
def test_hand_worked_tasks(task, per_class):
    ev = mAP_EPIC(ground_truth_filename=GT, prediction_filename=PRED, subset="val", tiou_thresholds=[0.5],
                  task=task, noun_classes=5, verb_classes=3)
    metrics = ev.evaluate()
    assert {c: v["AP@0.5"] for c, v in metrics["per_class_AP"].items()} == per_class
    assert metrics["average_mAP"] == metrics["mAP@0.5"] == 0.5


def test_duplicates_and_empty_actions_stay_positives():
    anns = [{"segment": [0, 10], "verb_label": "id_001", "noun_label": "id_000"}] * 2 + [
        {"segment": [5, 5], "verb_label": "id_001", "noun_label": "id_000"}]
    gt = {"database": {"v": {"subset": "val", "annotations": [dict(a, label="x") for a in anns]}}}
    pred = {"results": {"v": [{"segment": [0, 10], "verb": 1, "score": 0.9}]}}
    kw = dict(ground_truth_filename=gt, prediction_filename=pred, subset="val", tiou_thresholds=[0.5])
    assert mAP_EPIC(**kw).evaluate()["mAP@0.5"] == pytest.approx(1 / 3, abs=4 * EPS)  # 3 positives, 1 found
    assert mAP(**{**kw, "prediction_filename": {"results": {"v": [dict(pred["results"]["v"][0], label="x")]}}}
               ).evaluate()["mAP@0.5"] == 1.0  # mAP drops both


def test_predicted_ids_without_ground_truth_are_not_evaluated_and_never_alias(caplog):
    # Ground-truth verbs 3 and 7 are classes 0 and 1 inside; predicted verbs 0 and 1 must not count for them.
    anns = [{"segment": [0, 10], "verb_label": "id_003", "noun_label": "id_000"},
            {"segment": [20, 30], "verb_label": "id_007", "noun_label": "id_000"}]
    gt = {"database": {"v": {"subset": "val", "annotations": anns}}}
    pred = {"results": {"v": [{"segment": [20, 30], "verb": 1, "score": 0.99},
                              {"segment": [0, 10], "verb": 0, "score": 0.98},
                              {"segment": [20, 30], "verb": 7, "score": 0.5},
                              {"segment": [0, 10], "verb": "id_003", "score": 0.5}]}}
    with caplog.at_level(logging.WARNING, logger="opentad"):
        ev = mAP_EPIC(ground_truth_filename=gt, prediction_filename=pred, subset="val", tiou_thresholds=[0.5, 0.9])
    assert "2 prediction(s) have labels that are not ground-truth classes" in caplog.text
    assert ev.evaluate()["average_mAP"] == 1.0


@pytest.mark.parametrize("ann, needle", [
    ({"segment": [0, 1], "verb_label": "id_001"}, r"malformed annotation in video 'v': KeyError: 'noun_label'"),
    ({"segment": [0, 1], "verb_label": "id_001", "noun_label": "id_300"}, r"noun_label 'id_300' is outside \[0, 300\)"),
    ({"segment": [0, 1], "verb_label": "id_x", "noun_label": "id_001"}, r"verb_label must be a class id .* 'id_x'"),
])
def test_bad_ground_truth_names_file_video_and_key(tmp_path, ann, needle):
    path = tmp_path / "epic.json"
    path.write_text(json.dumps({"database": {"v": {"subset": "val", "annotations": [ann]}}}))
    cfg = dict(type="mAP_EPIC", ground_truth_filename=str(path), subset="val", tiou_thresholds=[0.5], task="action")
    with pytest.raises(GroundTruthError, match=needle) as info:
        check_ground_truth(cfg, class_map=["take"])  # a run's set-up, before any prediction
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(GroundTruthError, match=needle):
        build(cfg, EVALUATORS, prediction_filename={"results": {}})


@pytest.mark.parametrize("item, task, needle", [
    ({"segment": [0, 10], "score": 0.5, "label": "take"}, "verb", r"video 'v', prediction 0 .*KeyError: 'verb'"),
    ({"segment": [0, 10], "score": 0.5, "action": "1-2"}, "action", r"action must be 'verb,noun' class ids, got '1-2'"),
    ({"segment": [0, 10], "score": 0.5, "noun": 9}, "noun", r"noun 9 is outside \[0, 5\)"),
])
def test_bad_predictions_name_the_entry(item, task, needle):
    with pytest.raises(ValueError, match=needle):
        mAP_EPIC(ground_truth_filename=GT, prediction_filename={"results": {"v": [item]}}, subset="val",
                 tiou_thresholds=[0.5], task=task, noun_classes=5, verb_classes=3)


def test_bad_task_is_named():
    kw = dict(ground_truth_filename=GT, prediction_filename=PRED, subset="val", tiou_thresholds=[0.5])
    with pytest.raises(ValueError, match=r"task must be one of \['verb', 'noun', 'action'\], got 'adverb'"):
        mAP_EPIC(**kw, task="adverb")
    with pytest.raises(ConfigError, match="task"):
        build(dict(type="mAP_EPIC", task="adverb", **kw), EVALUATORS)
    with pytest.raises(ValueError, match="noun_classes and verb_classes must be positive"):
        mAP_EPIC(**kw, noun_classes=0)


def test_upstream_config_keys_and_the_test_engines_class_map_build(caplog):
    cfg = dict(type="mAP_EPIC", subset="val", tiou_thresholds=[0.5], ground_truth_filename=GT, thread=8,
               task="noun", noun_classes=5, verb_classes=3, blocked_videos=None)
    ev = build(cfg, EVALUATORS, prediction_filename=PRED, class_map=["take"])
    assert ev.evaluate()["mAP@0.5"] == 0.5
    log = logging.getLogger("test_epic_table")
    with caplog.at_level(logging.INFO, logger="test_epic_table"):
        ev.logging(log)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:2] == ["Evaluating noun task.", "Loaded annotations from val subset."]
    assert "mAP at tIoU 0.50 is 50.00%" in lines
