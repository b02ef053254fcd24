"""The ``Recall`` evaluator against a brute-force reference written here, hand-worked cases and bad inputs.

The reference follows the rules of ``opentad/evaluations/recall.py`` literally,
video by video and threshold by threshold with plain loops: the ground truth
of the subset (blocked videos, empty, duplicated and ignored actions removed),
the proposal budget (``ratio = M * V / N``; each video keeps its
``min(int(n * ratio), n)`` best, ties in input order), then for each curve
point the first ``min(int(m * p_j), m)`` kept proposals of a video.

Error model: recall values are integer counts divided once by the integer
number of actions on both sides (one correctly rounded division), so they are
compared exactly; the AN axis is the same expression on both sides, also
exact. The AUC and ``AR@k`` are sums in a different order: each of the ``J``
trapezoid terms is formed exactly alike, and re-ordering a sum of ``n``
non-negative terms changes it by at most ``(n - 1) * eps * sum``; the tests
use that bound (``sum <= an[-1]`` for the AUC, ``<= T`` for ``AR@k``).
"""
import json
import logging
import random

import numpy as np
import pytest

from opentad.evaluations import GroundTruthError, Recall, check_ground_truth
from opentad.registry import EVALUATORS, ConfigError, build

EPS = np.finfo(np.float64).eps
THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]  # upstream's proposal configs


def ref_tiou(ps, pe, gs, ge):
    inter = max(min(pe, ge) - max(ps, gs), 0.0)
    union = (ge - gs) + (pe - ps) - inter
    return inter / max(union, 1e-8)


def ref_ground_truth(database, subset, blocked, ignored):
    """{video: [(start, end)]} of videos with at least one kept action, in file order."""
    out = {}
    for video, info in database.items():
        if info["subset"] != subset or video in blocked:
            continue
        kept = []
        for ann in info["annotations"]:
            s, e, lab = ann["segment"][0], ann["segment"][1], ann["label"]
            if e - s <= 0 or any(abs(s - k[0]) <= 1e-3 and abs(e - k[1]) <= 1e-3 and lab == k[2] for k in kept):
                continue
            kept.append((s, e, lab))
        actions = [(float(s), float(e)) for s, e, lab in kept if lab not in ignored]
        if actions:
            out[video] = actions
    return out


def reference(database, results, *, subset="validation", thresholds=THRESHOLDS, max_avg=100, blocked=(),
              ignored=("Ambiguous",)):
    """(recall [T][J], AN [J]) by the documented rules, with loops."""
    gts = ref_ground_truth(database, subset, set(blocked), set(ignored))
    proposals = {v: items for v, items in results.items() if v not in blocked}
    n_all = sum(len(items) for items in proposals.values())
    num_videos = len(gts)
    budget = max_avg or n_all / num_videos
    ratio = budget * float(num_videos) / n_all
    kept = {}
    for video in gts:
        items = proposals.get(video, [])
        ranked = sorted(items, key=lambda p: -p["score"])  # stable: ties keep input order
        kept[video] = [(float(p["segment"][0]), float(p["segment"][1])) for p in ranked][: min(int(len(items) * ratio),
                                                                                                  len(items))]
    total = sum(len(k) for k in kept.values())
    steps = np.arange(1, budget + 1)
    if total == 0:  # the documented rule where upstream divides by zero
        return [[0.0] * len(steps) for _ in thresholds], [float(j) for j in steps]
    fractions = [float(j) / budget * (budget * float(num_videos) / total) for j in steps]
    positives = sum(len(a) for a in gts.values())
    recall = []
    for thr in thresholds:
        row = []
        for p in fractions:
            found = 0
            for video, actions in gts.items():
                m = len(kept[video])
                used = kept[video][: min(int(m * p), m)]
                for gs, ge in actions:
                    if any(ref_tiou(ps, pe, gs, ge) >= thr for ps, pe in used):
                        found += 1
            row.append(found / positives)
        recall.append(row)
    an = [p * (float(total) / num_videos) for p in fractions]
    return recall, an


def ref_metrics(recall, an, topk):
    avg = [sum(col) / len(col) for col in zip(*recall)]
    area = 0.0
    for j in range(1, len(an)):
        area += (an[j] - an[j - 1]) * (avg[j] + avg[j - 1]) / 2.0
    out = {"AUC": area / an[-1]}
    out.update({f"AR@{k}": sum(row[k - 1] for row in recall) / len(recall) for k in topk})
    return out


def random_case(rng, *, videos, max_gt, max_props, min_props=0, ties=False):
    database, results = {}, {}
    for v in range(videos):
        anns = []
        for _ in range(rng.randint(0, max_gt)):
            s = rng.randint(0, 160) / 2
            anns.append({"segment": [s, s + rng.randint(-1, 40) / 2], "label": rng.choice(["a", "b", "Ambiguous"])})
        if anns and rng.random() < 0.3:
            anns.append(dict(anns[0]))
        database[f"v{v}"] = {"subset": "validation" if rng.random() < 0.85 else "training", "annotations": anns}
        props = []
        for _ in range(rng.randint(min_props, max_props)):
            if anns and rng.random() < 0.5:
                src = rng.choice(anns)["segment"]
                s, e = src[0] + rng.randint(-6, 6) / 2, src[1] + rng.randint(-6, 6) / 2
            else:
                s = rng.randint(0, 160) / 2
                e = s + rng.randint(1, 40) / 2
            score = rng.randint(0, 5) / 5 if ties else rng.random()
            props.append({"segment": [s, e], "score": score})
        results[f"v{v}"] = props
    results["not_in_subset"] = [{"segment": [0.0, 5.0], "score": 0.9}] * rng.randint(0, 20)
    return {"database": database}, {"results": results}


def _compare(gt, pred, *, max_avg, topk, blocked=(), ignored=("Ambiguous",)):
    recall, an = reference(gt["database"], pred["results"], max_avg=max_avg, blocked=blocked, ignored=ignored)
    ev = Recall(ground_truth_filename=gt, prediction_filename=pred, subset="validation", tiou_thresholds=THRESHOLDS,
                topk=topk, max_avg_nr_proposals=max_avg, blocked_videos=list(blocked), ignored_labels=ignored)
    metrics = ev.evaluate()
    assert np.array_equal(ev.recall, np.array(recall))
    assert np.array_equal(ev.proposals_per_video, np.array(an))
    expected = ref_metrics(recall, an, topk)
    assert set(metrics) == set(expected)
    assert abs(metrics["AUC"] - expected["AUC"]) <= len(an) * EPS * max(expected["AUC"], EPS)
    for k in topk:
        assert abs(metrics[f"AR@{k}"] - expected[f"AR@{k}"]) <= len(THRESHOLDS) * EPS
    return metrics


def _has_gt(gt, blocked=()):
    return bool(ref_ground_truth(gt["database"], "validation", set(blocked), {"Ambiguous"}))


@pytest.mark.parametrize("seed", range(48))
def test_random_cases_match_the_reference(seed):
    rng = random.Random(seed)
    gt, pred = random_case(rng, videos=rng.randint(1, 12), max_gt=6, max_props=60, ties=seed % 2 == 0)
    if not _has_gt(gt) or not any(pred["results"].values()):
        pytest.skip("this seed drew no action or no proposal")  # covered by the dedicated tests below
    max_avg = [25, 10, None, 7][seed % 4]
    blocked = ["v1"] if seed % 3 == 0 and _has_gt(gt, ["v1"]) else []
    metrics = _compare(gt, pred, max_avg=max_avg, topk=[1, 5] if max_avg is None else [1, 5, 7], blocked=blocked)
    assert all(0.0 <= value <= 1.0 for value in metrics.values())


def test_an_activitynet_like_case_matches_the_reference():
    rng = random.Random(123)
    gt, pred = random_case(rng, videos=40, max_gt=4, min_props=100, max_props=100)  # as after upstream's NMS
    metrics = _compare(gt, pred, max_avg=100, topk=[1, 5, 10, 100])
    assert 0 < metrics["AR@1"] < metrics["AR@10"] < metrics["AR@100"] < 1


def hand_case(extra=()):
    gt = {"database": {
        "v1": {"subset": "validation", "annotations": [{"segment": [0, 10], "label": "A"}]},
        "v2": {"subset": "validation", "annotations": [{"segment": [0, 10], "label": "A"},
                                                       {"segment": [20, 30], "label": "B"}]},
    }}
    pred = {"results": {
        "v1": [{"segment": [0, 10], "score": 0.9}, {"segment": [20, 30], "score": 0.8}],
        "v2": [{"segment": [50, 60], "score": 0.9}, {"segment": [0, 9], "score": 0.5},
               {"segment": [20, 30], "score": 0.1}],
        **{name: [{"segment": [0, 1], "score": 1.0}] for name in extra},
    }}
    return gt, pred


def test_hand_worked_budget_and_curve():
    # N = 5, V = 2, M = 2: ratio 0.8, v1 keeps int(1.6) = 1 proposal ([0, 10]), v2 int(2.4) = 2 ([50, 60], [0, 9]);
    # total 3, p = (2/3, 4/3). j=1: v1 uses int(0.67) = 0, v2 int(1.33) = 1 ([50, 60]): nothing found.
    # j=2: v1 uses 1 (finds [0, 10], tIoU 1), v2 uses 2 ([0, 9] finds [0, 10] at tIoU 0.9 only).
    # recall(0.5) = (0, 2/3), recall(0.95) = (0, 1/3); AN = (1, 2); AR = (0, 1/2); AUC = (1/4) / 2.
    gt, pred = hand_case()
    ev = Recall(ground_truth_filename=gt, prediction_filename=pred, subset="validation", tiou_thresholds=[0.5, 0.95],
                topk=[1, 2], max_avg_nr_proposals=2)
    metrics = ev.evaluate()
    assert np.array_equal(ev.recall, [[0.0, 2 / 3], [0.0, 1 / 3]])
    np.testing.assert_allclose(ev.proposals_per_video, [1.0, 2.0], rtol=4 * EPS, atol=0)  # p * 3/2: 2 roundings
    assert metrics["AR@1"] == 0.0 and metrics["AR@2"] == 0.5
    assert metrics["AUC"] == pytest.approx(0.125, rel=16 * EPS, abs=0)


def test_proposals_of_other_videos_count_in_the_budget():
    # Five proposals of a video outside the subset: N = 10, ratio 0.4; v1 keeps int(0.8) = 0, v2 int(1.2) = 1
    # ([50, 60]): nothing can be found.
    gt, pred = hand_case(extra=[f"x{i}" for i in range(5)])
    ev = Recall(ground_truth_filename=gt, prediction_filename=pred, subset="validation", tiou_thresholds=[0.5],
                topk=[1, 2], max_avg_nr_proposals=2)
    assert ev.evaluate() == {"AUC": 0.0, "AR@1": 0.0, "AR@2": 0.0}


@pytest.mark.parametrize("ignored, expected", [((), 0.5), (("Ambiguous",), 1.0)])
def test_ambiguous_marks_count_by_default_as_upstream(ignored, expected):
    # Two ground-truth segments, one an "Ambiguous" mark; one proposal finds the action only. Upstream counts the
    # mark as a segment to recall (1 of 2); ignored_labels=("Ambiguous",) leaves it out (1 of 1).
    gt = {"database": {"v": {"subset": "validation", "annotations": [
        {"segment": [0, 10], "label": "A"}, {"segment": [30, 40], "label": "Ambiguous"}]}}}
    pred = {"results": {"v": [{"segment": [0, 10], "score": 0.9}]}}
    ev = Recall(ground_truth_filename=gt, prediction_filename=pred, subset="validation", tiou_thresholds=[0.5],
                topk=[1], max_avg_nr_proposals=1, **(dict(ignored_labels=ignored) if ignored else {}))
    assert ev.evaluate()["AR@1"] == expected


@pytest.mark.parametrize("first, expected", [("miss", 0.0), ("hit", 1.0)])
def test_equal_scores_keep_input_order(first, expected):
    hit, miss = {"segment": [0, 10], "score": 0.5}, {"segment": [30, 40], "score": 0.5}
    gt = {"database": {"v": {"subset": "validation", "annotations": [{"segment": [0, 10], "label": "A"}]}}}
    pred = {"results": {"v": [miss, hit] if first == "miss" else [hit, miss]}}
    # M = 1, N = 2: ratio 0.5, the video keeps int(1.0) = 1 proposal: the first of the tie.
    ev = Recall(ground_truth_filename=gt, prediction_filename=pred, subset="validation", tiou_thresholds=[0.5],
                topk=[1], max_avg_nr_proposals=1)
    assert ev.evaluate()["AR@1"] == expected


def test_no_proposal_at_all_gives_zeros_not_nan():
    gt, _ = hand_case()
    for max_avg in (2, None):
        ev = Recall(ground_truth_filename=gt, prediction_filename={"results": {}}, subset="validation",
                    tiou_thresholds=[0.5], topk=[1, 2], max_avg_nr_proposals=max_avg)
        assert ev.evaluate() == {"AUC": 0.0, "AR@1": 0.0, "AR@2": 0.0}


def test_logging_prints_upstreams_lines(caplog):
    gt, pred = hand_case()
    ev = Recall(ground_truth_filename=gt, prediction_filename=pred, subset="validation", tiou_thresholds=[0.5, 0.95],
                topk=[1, 2], max_avg_nr_proposals=2)
    with pytest.raises(RuntimeError, match="evaluate"):
        ev.logging()
    ev.evaluate()
    log = logging.getLogger("test_recall_table")
    with caplog.at_level(logging.INFO, logger="test_recall_table"):
        ev.logging(log)
    assert [r.getMessage() for r in caplog.records] == [
        "Loaded annotations from validation subset.", "Number of ground truth instances: 3",
        "Number of predictions: 5", "Fixed threshold for tiou score: [0.5, 0.95]", "AUC: 12.50 (%)",
        "AR@  1 is 0.00%", "AR@  2 is 50.00%",
    ]


def test_built_from_an_upstream_config_with_the_test_engines_class_map(tmp_path):
    gt, pred = hand_case()
    path = tmp_path / "anet.json"
    path.write_text(json.dumps(gt))
    cfg = dict(type="Recall", subset="validation", topk=[1, 2], max_avg_nr_proposals=2, tiou_thresholds=[0.5, 0.95],
               ground_truth_filename=str(path))
    ev = build(cfg, EVALUATORS, prediction_filename=pred, class_map=["A"])  # "B" is not in it: proposals have no class
    assert ev.evaluate()["AR@2"] == 0.5
    check_ground_truth(cfg, class_map=["A"])  # a run's set-up: the file is read, labels are not checked
    with pytest.raises(GroundTruthError, match="no ground-truth action in subset 'test'"):
        check_ground_truth(dict(cfg, subset="test"), class_map=["A"])
    with pytest.raises(ConfigError, match="max_avg_nr_proposal"):
        build(dict(cfg, max_avg_nr_proposal=2), EVALUATORS, prediction_filename=pred)


@pytest.mark.parametrize("kw, needle", [
    (dict(topk=[1, 200]), r"topk must be .* in \[1, max_avg_nr_proposals=100\], got \[1, 200\]"),
    (dict(topk=[0]), r"topk must be"),
    (dict(max_avg_nr_proposals=-1), "max_avg_nr_proposals must be positive"),
    (dict(tiou_thresholds=[0.5, 1.5]), r"tiou_thresholds must be .* in \(0, 1\]"),
])
def test_bad_keys_name_the_key(kw, needle):
    gt, pred = hand_case()
    args = dict(ground_truth_filename=gt, prediction_filename=pred, subset="validation", tiou_thresholds=[0.5])
    with pytest.raises(ValueError, match=needle):
        Recall(**{**args, **kw})


def test_adaptive_budget_shorter_than_topk_is_named():
    gt, pred = hand_case()  # 5 proposals, 2 videos: M = 2.5, a curve of 3 points
    ev = Recall(ground_truth_filename=gt, prediction_filename=pred, subset="validation", tiou_thresholds=[0.5],
                topk=[1, 100], max_avg_nr_proposals=None)
    with pytest.raises(ValueError, match=r"topk \[1, 100\] exceeds the 3 points of the AR-AN curve"):
        ev.evaluate()


def test_bad_files_are_named(tmp_path):
    gt, _ = hand_case()
    with pytest.raises(FileNotFoundError, match="ground_truth_filename: file not found"):
        Recall(ground_truth_filename=str(tmp_path / "no.json"), prediction_filename={"results": {}},
               subset="validation", tiou_thresholds=[0.5])
    with pytest.raises(GroundTruthError, match=r"no ground-truth action in subset 'test' \(subsets present"):
        Recall(ground_truth_filename=gt, prediction_filename={"results": {}}, subset="test", tiou_thresholds=[0.5])
    with pytest.raises(ValueError, match=r"malformed prediction at video 'v1', prediction 0 .*KeyError: 'score'"):
        Recall(ground_truth_filename=gt, prediction_filename={"results": {"v1": [{"segment": [0, 1]}]}},
               subset="validation", tiou_thresholds=[0.5])
    path = tmp_path / "pred.json"
    path.write_text(json.dumps({"database": {}}))
    with pytest.raises(ValueError, match=r"prediction_filename .*pred.json.* no top-level 'results' key"):
        Recall(ground_truth_filename=gt, prediction_filename=str(path), subset="validation", tiou_thresholds=[0.5])
