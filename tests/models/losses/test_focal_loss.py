"""FocalLoss against values worked out by hand."""
import math

import pytest
import torch

from opentad.models.losses import FocalLoss
from opentad.registry import LOSSES, build


def test_hand_computed_default_alpha_gamma():
    # logit 0, target 1: p = 1/2, BCE = ln 2, p_t = 1/2, (1 - p_t)^2 = 1/4, alpha_t = 0.25
    #   -> 0.25 * 0.25 * ln 2 = ln(2) / 16
    # logit ln 3, target 0: p = 3/4, BCE = -ln(1/4) = ln 4, p_t = 1/4, (1 - p_t)^2 = 9/16, alpha_t = 0.75
    #   -> 0.75 * 9/16 * ln 4 = 27/64 * ln 4
    # logit 0, soft target 1/2: BCE = ln 2, p_t = 1/2, factor 1/4, alpha_t = 0.25/2 + 0.75/2 = 1/2
    #   -> ln(2) / 8
    logits = torch.tensor([0.0, math.log(3.0), 0.0])
    targets = torch.tensor([1.0, 0.0, 0.5])
    expected = torch.tensor([math.log(2) / 16, 27 / 64 * math.log(4), math.log(2) / 8])
    loss = build(dict(type="FocalLoss"), LOSSES)
    torch.testing.assert_close(loss(logits, targets), expected)
    torch.testing.assert_close(loss(logits, targets, reduction="sum"), expected.sum())
    torch.testing.assert_close(loss(logits, targets, reduction="mean"), expected.mean())


def test_no_alpha_and_no_focusing_is_binary_cross_entropy():
    # alpha < 0 drops the weighting, gamma = 0 drops the modulating factor: plain BCE
    # logit ln 3, target 1: p = 3/4 -> -ln(3/4)
    loss = FocalLoss(alpha=-1.0, gamma=0.0)
    value = loss(torch.tensor([math.log(3.0)]), torch.tensor([1.0]))
    torch.testing.assert_close(value, torch.tensor([-math.log(0.75)]))


def test_gradient_pushes_logits_towards_targets():
    logits = torch.tensor([0.3, -0.2], requires_grad=True)
    FocalLoss()(logits, torch.tensor([1.0, 0.0]), reduction="sum").backward()
    assert logits.grad[0] < 0 < logits.grad[1]


def test_half_inputs_computed_in_float32():
    value = FocalLoss()(torch.zeros(3, dtype=torch.float16), torch.ones(3, dtype=torch.float16))
    assert value.dtype == torch.float32


def test_bad_reduction_is_rejected():
    with pytest.raises(ValueError, match="reduction"):
        FocalLoss()(torch.zeros(2), torch.zeros(2), reduction="avg")
