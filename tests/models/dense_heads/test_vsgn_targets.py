"""VSGN's anchor arithmetic (opentad/models/dense_heads/vsgn_targets.py) on hand-worked cases.

All inputs are small binary fractions, so the float32 results below are exact unless a tolerance says why.
"""
import math

import pytest
import torch

from opentad.models.dense_heads.vsgn_targets import (
    ForegroundEMA,
    anchor_gt_iou,
    decode_offsets,
    giou_loss,
    match_predictions,
    prepare_targets,
    vsgn_anchors,
)


def test_anchors_are_position_major_with_plus_one_lengths():
    # stride s, scale k, position p: centre p s + s/2, "+1" length k s -> half-width (k s - 1) / 2
    level4, level8 = vsgn_anchors([4, 8], tscale=16, anchor_scale=[1, 1.5])
    assert level4.tolist() == [
        [0.5, 3.5], [-0.5, 4.5], [4.5, 7.5], [3.5, 8.5], [8.5, 11.5], [7.5, 12.5], [12.5, 15.5], [11.5, 16.5]
    ]
    assert level8.tolist() == [[0.5, 7.5], [-1.5, 9.5], [8.5, 15.5], [6.5, 17.5]]
    assert vsgn_anchors([4], tscale=10, anchor_scale=[1])[0].shape == (3, 2)  # ceil(10 / 4) positions


def test_decode_offsets_by_hand():
    anchors = torch.tensor([[0.5, 3.5]] * 3)  # "+1" length 4, centre 2
    offsets = torch.tensor([[0.0, 0.0], [10.0, 5 * math.log(2.0)], [0.0, 100.0]])
    segments = decode_offsets(offsets, anchors)
    assert segments[0].tolist() == [0.5, 3.5]  # zero offsets give the anchor back
    # centre 2 + 10/10 * 4 = 6, width 4 * 2 = 8: [6 - 3.5, 6 + 3.5]; exp(ln 2) rounds within 1 ulp of 2
    assert segments[1].tolist() == pytest.approx([2.5, 9.5], abs=4 * 2.0 ** -20)
    # the log-width is clamped at log(1000 / 16): width 4 * 62.5 = 250
    assert segments[2].tolist() == pytest.approx([-122.5, 126.5], rel=1e-6)


def test_iou_gives_anchors_their_plus_one_length_only():
    anchors = torch.tensor([[0.5, 3.5], [10.0, 12.0]])
    gts = torch.tensor([[2.0, 6.0]])
    # intersection [2, 3.5] = 1.5; union 4 ("+1") + 4 - 1.5 = 6.5
    assert anchor_gt_iou(anchors, gts).tolist() == [[pytest.approx(1.5 / 6.5)], [0.0]]


def test_matching_keeps_each_ground_truths_best_predictions():
    iou = torch.tensor([[0.7, 0.1], [0.2, 0.3], [0.1, 0.05], [0.3, 0.3]])
    # row 0 passes 0.5; rows 1 and 3 attain ground truth 1's best (0.3, tied) and take their own best:
    # row 1 ground truth 1, row 3 ground truth 0 (its first maximum); row 2 stays unmatched
    assert match_predictions(iou, 0.5).tolist() == [0, 1, -1, 0]
    # a ground truth that nothing overlaps: every prediction attains its best (0) and keeps its own best
    assert match_predictions(torch.tensor([[0.0, 0.2], [0.0, 0.0]]), 0.5).tolist() == [1, 0]


def test_prepare_targets_shifts_labels_and_flattens_the_batch():
    anchors = torch.tensor([[[0.0, 9.0], [20.0, 29.0], [50.0, 59.0]]] * 2)
    gt_segments = [torch.tensor([[0.0, 10.0], [20.0, 30.0]]), torch.tensor([[52.0, 60.0]])]
    gt_labels = [torch.tensor([3, 0]), torch.tensor([7])]
    labels, segments = prepare_targets(anchors, gt_segments, gt_labels, iou_thr=0.6)
    assert labels.dtype == torch.int32
    # video 0: anchors 0 and 1 overlap their ground truth fully (iou 10/10); anchor 2 nothing -> background
    # video 1: anchor 2 is the ground truth's best (iou 7/11 -> above 0.6); anchors 0, 1 background
    assert labels.tolist() == [4, 1, 0, 0, 0, 8]
    assert segments.tolist() == [[0, 10], [20, 30], [0, 10], [52, 60], [52, 60], [52, 60]]
    with pytest.raises(ValueError, match="no ground-truth"):
        prepare_targets(anchors[:1], [torch.zeros(0, 2)], [torch.zeros(0, dtype=torch.long)], 0.5)


def test_giou_loss_by_hand_and_its_gradient_at_touching_segments():
    pred = torch.tensor([[1.0, 3.0], [3.0, 1.0], [0.0, 1.0]])
    target = torch.tensor([[2.0, 6.0], [2.0, 6.0], [2.0, 3.0]])
    # overlap 1 / union 5, enclosing 5 -> giou 0.2 (twice: a reversed pair is ordered first);
    # disjoint: 0 - (3 - 2) / 3
    expected = 0.8 + 0.8 + 4 / 3
    assert giou_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)  # the 1e-7 terms
    touching = torch.tensor([[0.0, 2.0]], requires_grad=True)
    giou_loss(touching, torch.tensor([[2.0, 4.0]])).backward()
    # giou = -1 + union / enclosing (union 4, enclosing 4): d/d start = (-4 + 4) / 16 = 0, d/d end = 4 / 16;
    # the intersection (0, strictly empty) adds no gradient, else d/d end would be 1/4 + 1/4
    assert touching.grad.tolist() == [[0.0, -0.25]]
    with pytest.raises(ValueError, match="no positive"):
        giou_loss(torch.zeros(0, 2), torch.zeros(0, 2))


def test_foreground_ema():
    ema = ForegroundEMA()
    assert ema.update(0) == pytest.approx(0.9 * 100 + 0.1 * 1)
    assert ema.update(30) == pytest.approx(0.9 * 90.1 + 0.1 * 30)
