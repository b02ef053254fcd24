"""SampledBCELoss: hand-worked values and upstream's random negative subset for a seed."""
import math

import torch

from opentad.models.losses.sampled_bce_loss import SampledBCELoss

EPS = 1e-6


def test_without_positives_every_element_is_a_negative():
    pred = torch.tensor([0.2, 0.5])
    loss = SampledBCELoss(pos_thresh=0.9)(pred, torch.tensor([0.3, 0.9]))  # 0.9 is not above 0.9
    expected = -(math.log(0.8 + EPS) + math.log(0.5 + EPS)) / 2
    assert abs(loss.item() - expected) < 4 * 2**-24 * abs(expected)  # float32: a log, a sum and a mean


def test_as_many_positives_as_negatives_keeps_every_negative():
    """n+ = n- makes the keep probability 1: rand * 1 > 0 for every draw (rand is 0 with probability 2^-24)."""
    pred = torch.tensor([0.9, 0.6, 0.3, 0.2])
    gt = torch.tensor([0.8, 0.7, 0.1, 0.0])
    loss = SampledBCELoss(pos_thresh=0.5)(pred, gt)
    expected = -(math.log(0.9 + EPS) + math.log(0.6 + EPS) + math.log(0.7 + EPS) + math.log(0.8 + EPS)) / 4
    assert abs(loss.item() - expected) < 8 * 2**-24 * abs(expected)


def test_seeded_subset_is_upstreams():
    """Upstream: keep a negative where rand(shape) * nmask > 1 - n+ / n- (CPU generator)."""
    torch.manual_seed(0)
    pred = torch.rand(3, 50) * 0.98 + 0.01
    gt = torch.rand(3, 50)
    pos, neg = (gt > 0.9).float(), (gt <= 0.9).float()
    torch.manual_seed(7)
    sampled = ((torch.rand(gt.shape) * neg) > (1 - pos.sum() / neg.sum())).float()
    ref = -(pos * torch.log(pred + EPS) + sampled * torch.log(1 - pred + EPS)).sum() / (pos.sum() + sampled.sum())
    torch.manual_seed(7)
    assert torch.equal(SampledBCELoss(pos_thresh=0.9)(pred, gt), ref)
    assert 0 < sampled.sum() < neg.sum()  # a real subset


def test_gradient_reaches_the_prediction_only_where_counted():
    pred = torch.tensor([0.9, 0.6, 0.3], requires_grad=True)
    SampledBCELoss(pos_thresh=0.5)(pred, torch.tensor([1.0, 1.0, 0.0])).backward()
    assert (pred.grad != 0).all()  # 2 positives, 1 negative kept with probability 1
