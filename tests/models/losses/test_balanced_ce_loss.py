"""BalancedCELoss by hand: each side's mean cross-entropy, whatever the imbalance."""
import math

import pytest
import torch

from opentad.models.losses.balanced_ce_loss import BalancedCELoss
from opentad.registry import LOSSES, build

LN3 = math.log(3.0)


def test_hand_worked_value():
    # CE: [0,0]->ln 2 whatever the label; [ln 3, 0] with label 0 and [0, ln 3] with label 1 -> ln(4/3)
    logits = torch.tensor([[0.0, 0.0], [LN3, 0.0], [0.0, LN3], [0.0, 0.0], [0.0, 0.0]], requires_grad=True)
    labels = torch.tensor([1, 0, 1, 0, 0], dtype=torch.int32)
    loss = BalancedCELoss()(logits, labels)
    pos = (math.log(2) + math.log(4 / 3)) / 2
    neg = (math.log(4 / 3) + 2 * math.log(2)) / 3  # three negatives weigh as much as two positives
    assert loss.item() == pytest.approx(pos + neg, rel=1e-6)  # float32 logs of O(1) values
    loss.backward()
    assert logits.grad.abs().sum() > 0


def test_registered_under_both_upstream_spellings():
    assert type(build(dict(type="BalancedCEloss"), LOSSES)) is BalancedCELoss
    assert type(build(dict(type="BalancedCELoss"), LOSSES)) is BalancedCELoss


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        BalancedCELoss()(torch.zeros(3, 2), torch.zeros(4))
