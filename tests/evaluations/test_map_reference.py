"""The vectorised mAP against a brute-force reference written here with plain loops.

The reference follows the documented rules literally: ground truth of the
subset (blocked videos, duplicates, empty and ignored labels removed), classes
in order of first appearance, predictions of a class sorted by decreasing score
with ties in input order, each prediction visiting its video's ground truth in
decreasing tIoU (ties: file order) and taking the first unmatched one at or
above the threshold, and the ActivityNet interpolated AP.
"""
import json
import random

import numpy as np
import pytest

from opentad.evaluations import mAP

THRESHOLDS = [0.1, 0.3, 0.5, 0.7, 0.95]


def ref_tiou(ps, pe, gs, ge):
    inter = max(min(pe, ge) - max(ps, gs), 0.0)
    union = (ge - gs) + (pe - ps) - inter
    return inter / max(union, 1e-8)


def ref_ground_truth(database, subset, blocked, ignored):
    classes, gts = [], []  # gts: (video, start, end, label)
    for video, info in database.items():
        if info["subset"] != subset or video in blocked:
            continue
        kept = []
        for ann in info["annotations"]:
            s, e, lab = ann["segment"][0], ann["segment"][1], ann["label"]
            if e - s <= 0:
                continue
            if any(abs(s - k[0]) <= 1e-3 and abs(e - k[1]) <= 1e-3 and lab == k[2] for k in kept):
                continue
            kept.append((s, e, lab))
        for s, e, lab in kept:
            if lab in ignored:
                continue
            if lab not in classes:
                classes.append(lab)
            gts.append((video, float(s), float(e), lab))
    return classes, gts


def ref_predictions(results, blocked):
    preds = []  # (video, start, end, label, score), in input order
    for video, items in results.items():
        if video in blocked:
            continue
        for r in items:
            preds.append((video, float(r["segment"][0]), float(r["segment"][1]), r["label"], float(r["score"])))
    return preds


def ref_interpolated_ap(tp_flags, npos):
    tp = fp = 0
    prec, rec = [], []
    for flag in tp_flags:
        tp += flag
        fp += 1 - flag
        prec.append(tp / (tp + fp))
        rec.append(tp / npos)
    mprec = [0.0] + prec + [0.0]
    mrec = [0.0] + rec + [1.0]
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mprec[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def ref_class_ap(gts, preds, threshold):
    """gts: [(video, s, e)], preds: [(video, s, e, score)] in input order."""
    ranked = sorted(preds, key=lambda p: -p[3])  # stable: ties keep input order
    matched = set()
    flags = []
    for video, ps, pe, _ in ranked:
        cands = [(ref_tiou(ps, pe, gs, ge), j) for j, (gv, gs, ge) in enumerate(gts) if gv == video]
        cands.sort(key=lambda c: (-c[0], c[1]))
        hit = 0
        for iou, j in cands:
            if iou < threshold:
                break
            if j in matched:
                continue
            matched.add(j)
            hit = 1
            break
        flags.append(hit)
    return ref_interpolated_ap(flags, len(gts))


def ref_recall(gts, preds, threshold, k):
    """Fraction of gts hit by the top k*x predictions of their class and video."""
    found = 0
    for video in {g[0] for g in gts}:
        vg = [g for g in gts if g[0] == video]
        vp = sorted([p for p in preds if p[0] == video], key=lambda p: -p[3])[: k * len(vg)]
        found += sum(any(ref_tiou(p[1], p[2], g[1], g[2]) >= threshold for p in vp) for g in vg)
    return found / len(gts)


def reference(database, results, subset, thresholds, top_k=None, blocked=(), ignored=("Ambiguous",)):
    classes, gts = ref_ground_truth(database, subset, set(blocked), set(ignored))
    preds = ref_predictions(results, set(blocked))
    if not classes:
        return classes, None, None
    ap = np.zeros((len(thresholds), len(classes)))
    recall = np.zeros((len(thresholds), len(top_k or []), len(classes)))
    for c, name in enumerate(classes):
        cg = [(g[0], g[1], g[2]) for g in gts if g[3] == name]
        cp = [(p[0], p[1], p[2], p[4]) for p in preds if p[3] == name]
        for t, thr in enumerate(thresholds):
            ap[t, c] = ref_class_ap(cg, cp, thr)
            for i, k in enumerate(top_k or []):
                recall[t, i, c] = ref_recall(cg, cp, thr, k)
    return classes, ap, recall.mean(axis=2)


def random_case(rng: random.Random, *, videos, classes, gts_per_video, preds_per_video):
    """Coarse grids make exact score ties, tIoU ties, tIoU == threshold and duplicates common."""
    labels = [f"c{i}" for i in range(classes)] + ["Ambiguous"]
    database, results = {}, {}
    for v in range(videos):
        name = f"v{v}"
        subset = "validation" if rng.random() < 0.8 else "training"
        anns = []
        for _ in range(rng.randint(0, gts_per_video)):
            s = rng.randint(0, 40) / 2
            anns.append({"segment": [s, s + rng.randint(0, 12) / 2], "label": rng.choice(labels)})
        if anns and rng.random() < 0.3:
            dup = dict(anns[0])
            dup["segment"] = [anns[0]["segment"][0] + 0.0005, anns[0]["segment"][1]]
            anns.append(dup)
        database[name] = {"subset": subset, "annotations": anns}
        preds = []
        for _ in range(rng.randint(0, preds_per_video)):
            if anns and rng.random() < 0.5:
                src = rng.choice(anns)["segment"]
                s, e = src[0] + rng.randint(-2, 2) / 2, src[1] + rng.randint(-2, 2) / 2
            else:
                s = rng.randint(0, 40) / 2
                e = s + rng.randint(0, 12) / 2
            lab = rng.choice(labels + ["never_in_gt"])
            preds.append({"segment": [s, e], "label": lab, "score": rng.randint(0, 10) / 10})
        results[name] = preds
    results["not_in_gt"] = [{"segment": [1.0, 3.0], "label": "c0", "score": 0.95}]
    return {"database": database}, {"results": results}


def _compare(gt, pred, *, top_k=None, blocked=(), ignored=("Ambiguous",)):
    kw = dict(ground_truth_filename=gt, prediction_filename=pred, subset="validation", tiou_thresholds=THRESHOLDS,
              top_k=top_k, blocked_videos=list(blocked), ignored_labels=ignored)
    classes, ap, recall = reference(gt["database"], pred["results"], "validation", THRESHOLDS, top_k, blocked, ignored)
    if not classes:  # defined behaviour: an empty subset is a configuration error
        with pytest.raises(ValueError, match="no ground-truth action in subset 'validation'"):
            mAP(**kw)
        return ap
    ev = mAP(**kw)
    metrics = ev.evaluate()
    assert ev.ground_truth.classes == classes
    np.testing.assert_allclose(ev.ap, ap, rtol=0, atol=1e-9)
    assert metrics["average_mAP"] == pytest.approx(ap.mean(axis=1).mean(), abs=1e-9)
    for t, thr in enumerate(THRESHOLDS):
        assert metrics[f"mAP@{thr}"] == pytest.approx(ap.mean(axis=1)[t], abs=1e-9)
        for i, k in enumerate(top_k or []):
            assert metrics[f"recall@{thr}@{k}"] == pytest.approx(recall[t, i], abs=1e-9)
    for c, name in enumerate(classes):
        assert metrics["per_class_AP"][name][f"AP@{THRESHOLDS[0]}"] == pytest.approx(ap[0, c], abs=1e-9)
    return ap


@pytest.mark.parametrize("seed", range(150))
def test_small_random_cases_match_reference(seed):
    rng = random.Random(seed)
    size = dict(videos=rng.randint(1, 6), classes=rng.randint(1, 4), gts_per_video=6, preds_per_video=25)
    gt, pred = random_case(rng, **size)
    blocked = ["v1"] if seed % 3 == 0 else []
    ignored = () if seed % 5 == 0 else ("Ambiguous",)
    _compare(gt, pred, top_k=[1, 2, 5] if seed % 2 else None, blocked=blocked, ignored=ignored)


@pytest.mark.parametrize("seed", range(4))
def test_larger_random_cases_match_reference(seed):
    rng = random.Random(1000 + seed)
    gt, pred = random_case(rng, videos=12, classes=5, gts_per_video=20, preds_per_video=150)
    ap = _compare(gt, pred, top_k=[1, 3])
    assert 0 < ap.mean() < 1  # a case that exercises both matches and misses


def test_json_paths_give_the_same_result(tmp_path):
    gt, pred = random_case(random.Random(7), videos=5, classes=3, gts_per_video=6, preds_per_video=30)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    (tmp_path / "blocked.json").write_text(json.dumps(["v2"]))
    kw = dict(subset="validation", tiou_thresholds=THRESHOLDS)
    from_files = mAP(ground_truth_filename=str(tmp_path / "gt.json"), prediction_filename=tmp_path / "pred.json",
                     blocked_videos=str(tmp_path / "blocked.json"), **kw).evaluate()
    from_dicts = mAP(ground_truth_filename=gt, prediction_filename=pred, blocked_videos=["v2"], **kw).evaluate()
    assert from_files == from_dicts
