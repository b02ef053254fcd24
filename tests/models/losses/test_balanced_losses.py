"""BalancedBCELoss and BalancedL2Loss against hand-worked values (upstream's arithmetic).

Tolerances: the hand values are evaluated in float64 by the test; the losses run in float64 too, so
the only error is rounding of a few dozen operations, bounded by 1e-12 relative.
"""
import math

import torch

from opentad.models.losses import BalancedBCELoss, BalancedL2Loss
from opentad.registry import LOSSES, build

REL = 1e-12


def _bce(p, y):
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_balanced_bce_weights_positives_and_negatives_to_equal_shares():
    pred = torch.tensor([[0.9, 0.2, 0.4, 0.7]], dtype=torch.float64)
    gt = torch.tensor([[0.8, 0.5, 0.1, 0.6]], dtype=torch.float64)  # pos_thresh 0.5: 0.5 itself is negative
    loss = BalancedBCELoss(pos_thresh=0.5)(pred, gt)
    # 2 positives (0.8, 0.6), 2 negatives: weights 0.5 * 4 / 2 = 1 each; positives 0.9, 0.7, negatives 0.2, 0.4
    terms = [_bce(0.9, 1), _bce(0.2, 0), _bce(0.4, 0), _bce(0.7, 1)]
    assert math.isclose(loss.item(), sum(terms) / 4, rel_tol=REL)

    gt = torch.tensor([[0.8, 0.1, 0.1, 0.1]], dtype=torch.float64)  # 1 positive, 3 negatives
    loss = BalancedBCELoss(pos_thresh=0.5)(pred, gt)
    expected = (2.0 * _bce(0.9, 1) + (2.0 / 3) * (_bce(0.2, 0) + _bce(0.4, 0) + _bce(0.7, 0))) / 4
    assert math.isclose(loss.item(), expected, rel_tol=REL)


def test_balanced_bce_without_positives_is_the_plain_mean():
    pred = torch.tensor([0.3, 0.6], dtype=torch.float64)
    loss = build(dict(type="BalancedBCELoss", pos_thresh=0.9), LOSSES)(pred, torch.tensor([0.2, 0.9]))
    assert math.isclose(loss.item(), (_bce(0.3, 0) + _bce(0.6, 0)) / 2, rel_tol=REL)


def test_balanced_bce_takes_integer_targets():
    """The TEM targets are int64 0/1 (upstream's truncation); the loss thresholds them."""
    pred = torch.tensor([0.9, 0.2], dtype=torch.float64)
    loss = BalancedBCELoss(pos_thresh=0.5)(pred, torch.tensor([1, 0]))
    assert math.isclose(loss.item(), (_bce(0.9, 1) + _bce(0.2, 0)) / 2, rel_tol=REL)


def test_balanced_l2_keeps_all_high_and_samples_the_other_bands_with_upstreams_draw():
    pred = torch.tensor([[0.5, 0.1, 0.2, 0.9, 0.3, 0.0]], dtype=torch.float64)
    gt = torch.tensor([[0.8, 0.5, 0.6, 0.2, 0.1, 0.75]], dtype=torch.float64)
    loss_fn = BalancedL2Loss(high_thresh=0.7, low_thresh=0.3, weight=5.0)
    torch.manual_seed(3)
    loss = loss_fn(pred, gt)
    # the same draws, by hand: high {0, 5}; middle {1, 2} kept with p = 2 / 2; low {3, 4} with p = 2 / 2
    torch.manual_seed(3)
    draw_mid, draw_low = torch.rand(6), torch.rand(6)
    keep = [1.0 if i in (0, 5) else 0.0 for i in range(6)]
    for i in (1, 2):
        keep[i] += float(draw_mid[i].item() > 0.0)
    for i in (3, 4):
        keep[i] += float(draw_low[i].item() > 0.0)
    err = [(p - g) ** 2 for p, g in zip(pred[0].tolist(), gt[0].tolist())]
    expected = sum(e * k for e, k in zip(err, keep)) / sum(keep) * 5.0
    assert math.isclose(loss.item(), expected, rel_tol=REL)


def test_balanced_l2_sampling_probability_is_the_band_ratio():
    """1 high, 4 middle: each middle element is kept when its draw exceeds 1 - 1/4."""
    pred = torch.zeros(1, 5, dtype=torch.float64)
    gt = torch.tensor([[0.9, 0.5, 0.5, 0.5, 0.5]], dtype=torch.float64)
    torch.manual_seed(0)
    loss = BalancedL2Loss()(pred, gt)
    torch.manual_seed(0)
    draw = torch.rand(5)
    # no low element: its ratio is inf, and upstream's test ``rand * 0 > -inf`` keeps every element once more
    keep = [2.0] + [1.0 + (1.0 if draw[i].item() > 0.75 else 0.0) for i in range(1, 5)]
    expected = (2.0 * 0.81 + sum(k * 0.25 for k in keep[1:])) / sum(keep)
    assert math.isclose(loss.item(), expected, rel_tol=REL)


def test_balanced_l2_without_high_elements_is_the_unweighted_mse():
    pred = torch.tensor([0.1, 0.4], dtype=torch.float64)
    gt = torch.tensor([0.3, 0.6], dtype=torch.float64)
    loss = BalancedL2Loss(weight=5.0)(pred, gt)
    assert math.isclose(loss.item(), (0.04 + 0.04) / 2, rel_tol=REL)


def test_balanced_l2_is_deterministic_under_a_seed():
    pred = torch.rand(2, 50, generator=torch.Generator().manual_seed(1))
    gt = torch.rand(2, 50, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(7)
    first = BalancedL2Loss()(pred, gt)
    torch.manual_seed(7)
    assert torch.equal(first, BalancedL2Loss()(pred, gt))
