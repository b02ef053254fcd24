"""ScaleInvariantLoss: hand-worked IoU targets, per-action weights and the weighted BCE.

Error model: the loss is a float32 sum of at most 12 terms ``c w (-log p)`` with ``|term| <= 2``;
each log, product and addition rounds by at most ``2^-24`` relative, so the float32 result is within
``16 * 2^-24 * sum|terms|`` of the float64 hand evaluation (the bound used below).
"""
import math

import pytest
import torch

from opentad.registry import LOSSES, build

# proposals (start, end); ground truths A = [0, 10], C = [1, 10]
PROPOSALS = torch.tensor([[0.0, 10.0], [1.0, 10.0], [2.0, 10.0], [0.0, 6.0], [20.0, 30.0], [5.0, 15.0]])
GT_AC = torch.tensor([[0.0, 10.0], [1.0, 10.0]])
GT_FAR = torch.tensor([[20.0, 30.0]])


def close(value, terms):
    return abs(value - sum(terms)) <= 16 * 2.0**-24 * sum(abs(t) for t in terms)


def test_targets_and_weights_by_hand():
    loss = build(dict(type="ScaleInvariantLoss", pos_thresh=0.5), LOSSES)
    ious, weights = loss.prepare_targets(PROPOSALS, [GT_AC, GT_FAR])
    # sample 0: IoU with A and C
    #   [0,10]: 1, 0.9 -> best A       [1,10]: 0.9, 1 -> best C     [2,10]: 0.8, 8/9 -> best C
    #   [0,6]: 0.6, 5/10 = 0.5 (not > 0.5: a positive of A only)     [20,30]: 0, 0     [5,15]: 1/3, 5/14 -> 5/14
    # positives per ground truth: A has 4 (all four), C has 3 (not [0,6]); 2 negatives share 2 ground truths
    assert torch.allclose(ious[0], torch.tensor([1.0, 1.0, 8 / 9, 0.6, 0.0, 5 / 14]))
    assert torch.allclose(weights[0], torch.tensor([1 / 4, 1 / 3, 1 / 3, 1 / 4, 1.0, 1.0]))
    # sample 1: only [20,30] matches; 5 negatives share 1 ground truth
    assert torch.equal(ious[1], torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 0.0]))
    assert torch.allclose(weights[1], torch.tensor([0.2, 0.2, 0.2, 0.2, 1.0, 0.2]))


def test_loss_by_hand_and_the_targets_it_returns():
    loss = build(dict(type="ScaleInvariantLoss", pos_thresh=0.5, alpha=0.2), LOSSES)
    pred = torch.tensor([[0.5, 0.8, 0.6, 0.9, 0.1, 0.3], [0.4, 0.2, 0.3, 0.1, 0.7, 0.6]], requires_grad=True)
    value, ious = loss(pred, PROPOSALS, [GT_AC, GT_FAR])
    pos, neg = (lambda p: -math.log(p)), (lambda p: -math.log(1 - p))
    terms = [  # alpha * weight * BCE for positives, (1 - alpha) * weight * BCE for negatives; / batch of 2
        0.2 * 0.25 * pos(0.5), 0.2 / 3 * pos(0.8), 0.2 / 3 * pos(0.6), 0.2 * 0.25 * pos(0.9),
        0.8 * neg(0.1), 0.8 * neg(0.3),
        0.8 * 0.2 * (neg(0.4) + neg(0.2) + neg(0.3) + neg(0.1) + neg(0.6)), 0.2 * pos(0.7),
    ]
    assert close(value.item(), [t / 2 for t in terms])
    assert torch.equal(ious, loss.prepare_targets(PROPOSALS, [GT_AC, GT_FAR])[0])
    value.backward()
    assert pred.grad is not None and (pred.grad != 0).all()


def test_without_positives_the_plain_mean():
    loss = build(dict(type="ScaleInvariantLoss"), LOSSES)  # pos_thresh 0.9: [0,6] vs [0,10] is 0.6
    pred = torch.tensor([[0.25, 0.5]])
    value, ious = loss(pred, PROPOSALS[3:5], [GT_AC])
    assert close(value.item(), [-math.log(0.75) / 2, -math.log(0.5) / 2])  # both negatives: mean BCE
    assert torch.allclose(ious, torch.tensor([[0.6, 0.0]]))


def test_a_sample_without_ground_truth_weighs_nothing():
    loss = build(dict(type="ScaleInvariantLoss", pos_thresh=0.5), LOSSES)
    ious, weights = loss.prepare_targets(PROPOSALS, [GT_FAR, GT_FAR[:0]])
    assert torch.equal(ious[1], torch.zeros(6)) and torch.equal(weights[1], torch.zeros(6))


def test_keys_are_checked():
    with pytest.raises(ValueError, match="pos_tresh"):
        build(dict(type="ScaleInvariantLoss", pos_tresh=0.5), LOSSES)
