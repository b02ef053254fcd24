"""SoftmaxFocalLoss (AFSD's ``FocalLoss_Ori``): hand-worked values, class weights, reductions."""
import math

import pytest
import torch

from opentad.models.losses import SoftmaxFocalLoss


def test_hand_worked_rows():
    """-alpha_y (1 - p)^2 log p with p = prob[y] + 1e-6; alpha 0.25 for class 0, 0.75 otherwise.

    float32 evaluation of ~5 roundings per row (relative 2^-24 each) against float64: rtol 1e-6.
    """
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.125, 0.375, 0.5]])
    targets = torch.tensor([1, 0])
    loss = SoftmaxFocalLoss(num_classes=3)(probs, targets, reduction="none")
    expected = []
    for p, alpha in ((0.25 + 1e-6, 0.75), (0.125 + 1e-6, 0.25)):
        expected.append(-alpha * (1 - p) ** 2 * math.log(p))
    torch.testing.assert_close(loss, torch.tensor(expected), rtol=1e-6, atol=0)
    total = SoftmaxFocalLoss(num_classes=3)(probs, targets.view(-1, 1))  # upstream's [N, 1] targets, sum
    torch.testing.assert_close(total, torch.tensor(sum(expected)), rtol=1e-6, atol=0)


def test_class_weights_and_bad_settings():
    assert SoftmaxFocalLoss(num_classes=4, alpha=0.25, balance_index=2).class_weights("cpu").tolist() == [
        0.75, 0.75, 0.25, 0.75
    ]
    with pytest.raises(ValueError, match="alpha"):
        SoftmaxFocalLoss(num_classes=3, alpha=1.5)
    with pytest.raises(ValueError, match="balance_index"):
        SoftmaxFocalLoss(num_classes=3, balance_index=3)
