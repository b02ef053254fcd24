"""batched_nms and its kernels against hand-worked cases and a brute-force reference."""

import math

import numpy as np
import pytest
import torch

from opentad.models.utils.post_processing import batched_nms, nms_1d, seg_voting, soft_nms_1d


def random_detections(seed, num=60, num_classes=3, length=100.0):
    gen = torch.Generator().manual_seed(seed)
    start = torch.rand(num, generator=gen) * length
    size = torch.rand(num, generator=gen) * length / 5 + 0.5
    segs = torch.stack([start, start + size], dim=1)
    scores = torch.rand(num, generator=gen)
    labels = torch.randint(0, num_classes, (num,), generator=gen)
    return segs, scores, labels


def assert_matches_reference(out, expected, *, exact=True):
    segs, scores, labels = out
    exp_segs, exp_scores, exp_labels = expected
    assert labels.tolist() == exp_labels
    if exact:
        assert segs.tolist() == exp_segs
        assert scores.tolist() == exp_scores
    else:
        torch.testing.assert_close(segs, torch.tensor(exp_segs, dtype=torch.float32).reshape(-1, 2), rtol=0, atol=1e-3)
        assert scores.tolist() == exp_scores


CONFIGS = [
    dict(use_soft_nms=False, iou_threshold=0.5, min_score=0.0, max_seg_num=100, multiclass=True),
    dict(use_soft_nms=False, iou_threshold=0.3, min_score=0.4, max_seg_num=7, multiclass=True),
    dict(use_soft_nms=False, iou_threshold=0.1, min_score=0.2, max_seg_num=100, multiclass=False),
    dict(use_soft_nms=True, sigma=0.5, min_score=0.001, max_seg_num=2000, multiclass=True),
    dict(use_soft_nms=True, sigma=0.3, min_score=0.3, max_seg_num=15, multiclass=False),
    dict(use_soft_nms=True, sigma=0.75, min_score=0.0, max_seg_num=5, multiclass=True),
    dict(use_soft_nms=True, iou_threshold=0.4, min_score=0.05, method=0, multiclass=False),
    dict(use_soft_nms=True, iou_threshold=0.2, min_score=0.2, method=1, multiclass=True),
    dict(use_soft_nms=True, sigma=0.4, min_score=0.1, method=3, t1=0.5, t2=0.01, multiclass=False),
]
VOTING_CONFIGS = [
    dict(use_soft_nms=True, sigma=0.5, min_score=0.001, max_seg_num=100, multiclass=False, voting_thresh=0.7),
    dict(use_soft_nms=False, iou_threshold=0.4, min_score=0.3, max_seg_num=10, multiclass=False, voting_thresh=0.5),
]


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_batched_nms_matches_brute_force(cfg, seed, ref):
    segs, scores, labels = random_detections(seed)
    out = batched_nms(segs, scores, labels, backend="torch", **cfg)
    assert_matches_reference(out, ref.batched_nms(segs, scores, labels, **cfg))


@pytest.mark.parametrize("cfg", VOTING_CONFIGS)
def test_batched_nms_voting_matches_brute_force(cfg, ref):
    segs, scores, labels = random_detections(3, num=80)
    out = batched_nms(segs, scores, labels, backend="torch", **cfg)
    assert_matches_reference(out, ref.batched_nms(segs, scores, labels, **cfg), exact=False)


def test_voting_is_off_for_multiclass():
    segs, scores, labels = random_detections(4)
    cfg = dict(use_soft_nms=True, sigma=0.5, min_score=0.001, multiclass=True)
    plain = batched_nms(segs, scores, labels, backend="torch", **cfg)
    voted = batched_nms(segs, scores, labels, backend="torch", voting_thresh=0.7, **cfg)
    for a, b in zip(plain, voted):
        assert torch.equal(a, b)


def test_soft_nms_tie_order_follows_swap_with_last(ref):
    # equal scores on disjoint segments; overlapping ones decay below min_score
    # and are dropped, which reorders the remaining ties
    gen = torch.Generator().manual_seed(7)
    starts = torch.randperm(40, generator=gen).float() * 3
    segs = torch.stack([starts, starts + 2.5], dim=1)
    segs = torch.cat([segs, segs[::3] + 0.2])  # near-duplicates, suppressed
    scores = (torch.randint(1, 4, (segs.shape[0],), generator=gen).float()) / 4
    dets, inds = soft_nms_1d(segs, scores, iou_threshold=0.0, sigma=0.01, min_score=0.2, backend="torch")
    exp_dets, exp_inds = ref.soft_nms(segs, scores, 0.0, 0.01, 0.2, 2, 0.0, 0.0)
    assert inds.tolist() == exp_inds
    assert dets.tolist() == [[float(v) for v in d] for d in exp_dets]


def test_hard_nms_hand_worked():
    segs = torch.tensor([[0.0, 10.0], [1.0, 11.0], [20.0, 30.0], [0.0, 10.5]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    # IoU([0,10],[1,11]) = 9/11, IoU([0,10],[0,10.5]) = 10/10.5: both suppressed at 0.5
    assert nms_1d(segs, scores, iou_threshold=0.5, backend="torch").tolist() == [0, 2]
    # at 0.95 only the 10/10.5 = 0.952 overlap suppresses
    assert nms_1d(segs, scores, iou_threshold=0.95, backend="torch").tolist() == [0, 1, 2]
    assert nms_1d(segs, scores, iou_threshold=0.5, max_num=1, backend="torch").tolist() == [0]


def test_soft_nms_gaussian_hand_worked():
    segs = torch.tensor([[0.0, 10.0], [5.0, 15.0], [40.0, 50.0]])
    scores = torch.tensor([0.8, 0.9, 0.5])
    dets, inds = soft_nms_1d(segs, scores, iou_threshold=0.0, sigma=0.5, min_score=0.0, backend="torch")
    # IoU = 5 / 15; the 0.8 segment decays by exp(-(1/3)^2 / 0.5)
    assert inds.tolist() == [1, 0, 2]
    expected = [[5, 15, 0.9], [0, 10, 0.8 * math.exp(-(1 / 9) / 0.5)], [40, 50, 0.5]]
    torch.testing.assert_close(dets, torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_soft_nms_first_selection_ignores_min_score():
    segs = torch.tensor([[0.0, 1.0], [5.0, 6.0]])
    scores = torch.tensor([0.0005, 0.0004])
    labels = torch.tensor([0, 0])
    s, p, lab = batched_nms(segs, scores, labels, use_soft_nms=True, min_score=0.001, multiclass=True)
    assert s.tolist() == [[0.0, 1.0]] and lab.tolist() == [0]
    torch.testing.assert_close(p, torch.tensor([0.0005]))
    # hard NMS filters by score > min_score first, so nothing is left
    s, p, lab = batched_nms(segs, scores, labels, use_soft_nms=False, iou_threshold=0.5, min_score=0.001)
    assert s.shape == (0, 2) and p.shape == (0,) and lab.shape == (0,)


def test_multiclass_keeps_duplicates_of_other_classes():
    segs = torch.tensor([[0.0, 10.0], [0.0, 10.0], [0.5, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    labels = torch.tensor([0, 1, 0])
    cfg = dict(use_soft_nms=False, iou_threshold=0.5, backend="torch")
    _, p, lab = batched_nms(segs, scores, labels, multiclass=True, **cfg)
    assert lab.tolist() == [0, 1] and p.tolist() == pytest.approx([0.9, 0.8])
    _, p, lab = batched_nms(segs, scores, labels, multiclass=False, **cfg)
    assert lab.tolist() == [0] and p.tolist() == pytest.approx([0.9])


def test_voting_hand_worked():
    segs = torch.tensor([[0.0, 10.0], [1.0, 11.0], [50.0, 60.0]])
    scores = torch.tensor([0.9, 0.6, 0.5])
    labels = torch.zeros(3, dtype=torch.long)
    s, p, _ = batched_nms(
        segs,
        scores,
        labels,
        use_soft_nms=False,
        iou_threshold=0.5,
        multiclass=False,
        voting_thresh=0.7,
        backend="torch",
    )
    # [0,10] absorbs [1,11] (IoU 9/11 >= 0.7) weighted 0.9 : 0.6
    torch.testing.assert_close(s, torch.tensor([[0.4, 10.4], [50.0, 60.0]]))
    torch.testing.assert_close(p, torch.tensor([0.9, 0.5]))  # voting leaves scores alone


def test_seg_voting_without_positive_neighbour_is_nan():
    out = seg_voting(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([0.0]), 0.5)
    assert torch.isnan(out).all()


def test_max_seg_num_cut_and_quirks():
    segs, scores, labels = random_detections(5, num=30)
    cfg = dict(use_soft_nms=True, min_score=0.0, multiclass=True, backend="torch")
    full = batched_nms(segs, scores, labels, max_seg_num=1000, **cfg)
    assert full[0].shape[0] == 30
    top = batched_nms(segs, scores, labels, max_seg_num=4, **cfg)
    # each class keeps its best 4, then the best 4 overall: the same as the full top 4
    for a, b in zip(top, full):
        assert torch.equal(a, b[:4])
    assert batched_nms(segs, scores, labels, max_seg_num=0, **cfg)[0].shape == (0, 2)
    drop_last = batched_nms(segs, scores, labels, max_seg_num=-2, **cfg)
    assert torch.equal(drop_last[1], full[1][:-2])


def test_output_types_and_empty_input():
    segs, scores, labels = random_detections(6, num=10)
    s, p, lab = batched_nms(segs.double(), scores.double(), labels.float(), backend="torch")
    assert s.dtype == torch.float32 and p.dtype == torch.float32 and lab.dtype == torch.float32
    assert bool((p[:-1] >= p[1:]).all())
    s, p, lab = batched_nms(torch.zeros(0, 2), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert s.shape == (0, 2) and p.shape == (0,) and lab.dtype == torch.long


def test_inputs_are_not_modified():
    segs, scores, labels = random_detections(8)
    copies = [t.clone() for t in (segs, scores, labels)]
    batched_nms(segs, scores, labels, use_soft_nms=True, min_score=0.5, multiclass=False, backend="torch")
    for a, b in zip(copies, (segs, scores, labels)):
        assert torch.equal(a, b)


def test_bad_shapes_and_backend_raise():
    with pytest.raises(ValueError, match="segments \\[N, 2\\]"):
        batched_nms(torch.zeros(3, 3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="backend"):
        batched_nms(torch.zeros(3, 2), torch.zeros(3), torch.zeros(3), backend="cuda")


def test_reference_soft_nms_is_gaussian_decay(ref):
    # sanity of the reference itself: one decay step by hand
    dets, inds = ref.soft_nms(torch.tensor([[0.0, 4.0], [2.0, 6.0]]), torch.tensor([1.0, 0.5]), 0, 0.5, 0, 2, 0, 0)
    ovr = 2 / 6
    assert inds == [0, 1] and float(dets[1][2]) == pytest.approx(0.5 * np.exp(-(ovr**2) / 0.5), rel=1e-5)
