"""The vectorised building blocks against plain loops: candidate pairs and greedy matching."""
import random

import numpy as np
import pytest

from opentad.evaluations.matching import greedy_match, overlapping_pairs, segment_tiou


@pytest.mark.parametrize("seed", range(20))
def test_overlapping_pairs_hold_every_overlap_of_the_same_group(seed):
    rng = np.random.default_rng(seed)
    n_gt, n_pred, n_groups = int(rng.integers(1, 40)), int(rng.integers(0, 80)), int(rng.integers(1, 6))
    gs = rng.integers(0, 30, n_gt) / 2.0  # grid values: shared boundaries, touching segments
    ge = gs + rng.integers(0, 10, n_gt) / 2.0
    ps = rng.integers(0, 30, n_pred) / 2.0
    pe = ps + rng.integers(-2, 10, n_pred) / 2.0  # includes empty and reversed predictions
    g_grp, p_grp = rng.integers(0, n_groups, n_gt) * 7, rng.integers(0, n_groups, n_pred) * 7
    pair_pred, pair_gt = overlapping_pairs(g_grp, gs, ge, p_grp, ps, pe)
    got = set(zip(pair_pred.tolist(), pair_gt.tolist()))
    assert len(got) == len(pair_pred)  # no pair twice
    assert all(p_grp[p] == g_grp[g] for p, g in got)
    assert list(pair_pred) == sorted(pair_pred)
    for p in range(n_pred):
        for g in range(n_gt):
            if p_grp[p] == g_grp[g] and min(pe[p], ge[g]) - max(ps[p], gs[g]) > 0:
                assert (p, g) in got, (p, g)


def serial_greedy(pair_pred, pair_gt, pair_iou, threshold, num_pred, num_gt):
    cands = {}
    for p, g, iou in zip(pair_pred, pair_gt, pair_iou):
        cands.setdefault(p, []).append((-iou, g))
    taken, tp = set(), [False] * num_pred
    for p in range(num_pred):
        for neg_iou, g in sorted(cands.get(p, [])):
            if -neg_iou < threshold:
                break
            if g not in taken:
                taken.add(g)
                tp[p] = True
                break
    return tp


@pytest.mark.parametrize("seed", range(30))
def test_greedy_match_equals_serial_greedy_under_contention(seed):
    # Many predictions competing for few ground truths, shuffled pair order, tied tIoUs.
    rng = random.Random(seed)
    num_pred, num_gt = rng.randint(1, 60), rng.randint(1, 12)
    pairs = {(rng.randrange(num_pred), rng.randrange(num_gt)) for _ in range(rng.randint(0, 200))}
    pairs = list(pairs)
    rng.shuffle(pairs)
    pair_pred = np.array([p for p, _ in pairs], dtype=np.int64)
    pair_gt = np.array([g for _, g in pairs], dtype=np.int64)
    pair_iou = np.array([rng.randint(1, 10) / 10 for _ in pairs])
    thresholds = [0.1, 0.3, 0.5, 0.8, 1.0]
    tp = greedy_match(pair_pred, pair_gt, pair_iou, thresholds, num_pred, num_gt)
    for t, thr in enumerate(thresholds):
        assert tp[t].tolist() == serial_greedy(pair_pred, pair_gt, pair_iou, thr, num_pred, num_gt)


def test_segment_tiou_examples():
    # [0,10] vs [5,15]: 5 / 15; touching segments: 0; identical: 1; empty both: 0 (union clipped).
    got = segment_tiou(np.array([0.0, 0.0, 2.0, 3.0]), np.array([10.0, 1.0, 4.0, 3.0]),
                       np.array([5.0, 1.0, 2.0, 3.0]), np.array([15.0, 2.0, 4.0, 3.0]))
    np.testing.assert_array_equal(got, [5 / 15, 0.0, 1.0, 0.0])
