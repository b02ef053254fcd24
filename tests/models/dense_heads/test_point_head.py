"""The loss helpers that AnchorFreeHead, TriDetHead and TemporalMaxerHead share (PointHead).

Hand-worked: the positives are the valid points with some class target, the training normaliser
is the EMA ``0.9 * 100 + 0.1 * max(num_pos, 1)`` (compared with the same float32 operations), label smoothing is
``t (1 - eps) + eps / (C + 1)`` and ``loss_weight <= 0`` scales the regression loss by
``cls / max(reg, 0.01)`` without gradient.
"""
import pytest
import torch
import torch.nn as nn

from opentad.models.dense_heads.anchor_free_head import AnchorFreeHead
from opentad.models.dense_heads.prior_generator.point_generator import PointGenerator


def _head(**kwargs):
    generator = PointGenerator(strides=[1], regression_range=[(0, 10000)])
    keys = dict(num_classes=3, in_channels=4, feat_channels=4, num_convs=1, prior_generator=generator)
    return AnchorFreeHead(cls_loss=nn.Identity(), reg_loss=nn.Identity(), **keys, **kwargs)


def test_positives_are_valid_points_with_a_target_and_update_the_normaliser():
    head = _head().train()
    gt_cls = torch.zeros(2, 4, 3)
    gt_cls[0, 0, 1] = gt_cls[0, 3, 2] = gt_cls[1, 2, 0] = 1.0
    valid = torch.tensor([[True, True, True, False], [True, True, True, True]])
    pos, num_pos, normalizer = head.positives(gt_cls, valid)
    assert torch.equal(pos, torch.tensor([[True, False, False, False], [False, False, True, False]]))
    assert num_pos == 2 and normalizer == float(torch.tensor(90.0) + 0.1 * 2)
    head.eval()
    assert head.positives(gt_cls, valid)[2] == 2.0 and float(head.loss_normalizer) == normalizer


def test_smoothed_targets():
    head = _head(label_smoothing=0.2)
    assert torch.allclose(head.smoothed(torch.tensor([0.0, 1.0])), torch.tensor([0.05, 0.85]), rtol=0, atol=1e-7)


def test_weighted_balances_regression_without_gradient():
    cls_loss, reg_loss = torch.tensor(3.0, requires_grad=True), torch.tensor(0.5, requires_grad=True)
    losses = _head(loss_weight=-1.0).weighted(cls_loss, reg_loss)
    assert float(losses["reg_loss"].detach()) == 3.0 and losses["cls_loss"] is cls_loss
    losses["reg_loss"].backward()
    assert cls_loss.grad is None and float(reg_loss.grad) == 6.0
    assert float(_head(loss_weight=2.0).weighted(cls_loss, reg_loss)["reg_loss"].detach()) == 1.0
