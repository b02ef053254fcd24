"""PEMHead: upstream's keys and padding, hand-worked IoU targets, the two losses on the valid entries.

Tolerance: the expected losses are the same float64 operations on the same values, so they agree to
rounding of a few dozen float64 operations (1e-12 relative).
"""
import math

import pytest
import torch
import torch.nn as nn

from opentad.models.losses import BalancedBCELoss, BalancedL2Loss
from opentad.models.roi_heads.proposal_head.pem_head import proposal_iou_targets
from opentad.registry import ROI_HEADS, build

LOSS = dict(cls_loss=dict(type="BalancedBCELoss", pos_thresh=0.9),
            reg_loss=dict(type="BalancedL2Loss", high_thresh=0.7, low_thresh=0.3, weight=5.0))


def _head(**kwargs):
    cfg = dict(type="PEMHead", in_channels=4, feat_channels=6, num_convs=2, num_classes=2, loss=LOSS)
    cfg.update(kwargs)
    return build(cfg, ROI_HEADS)


def test_keys_and_padding_are_upstreams():
    head = _head()
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == {
        "head.0.0.weight": (6, 4, 3, 3), "head.0.0.bias": (6,),
        "head.1.0.weight": (6, 6, 3, 3), "head.1.0.bias": (6,),
        "head.2.weight": (2, 6, 1, 1), "head.2.bias": (2,),
    }
    assert head.head[0][0].padding == (1, 1)
    assert _head(kernel_size=1, num_convs=3).head[0][0].padding == (0, 0)  # kernel_size // 3, as upstream
    assert _head(kernel_size=5).head[0][0].padding == (1, 1)  # not kernel_size // 2: the map shrinks by 2 a conv
    assert isinstance(head.cls_loss, BalancedBCELoss) and isinstance(head.reg_loss, BalancedL2Loss)
    assert head.forward_test(torch.randn(1, 4, 5, 7)).shape == (1, 2, 5, 7)


def test_iou_targets_by_hand():
    proposals = torch.tensor([[0.0, 1.0], [0.0, 2.0], [1.0, 3.0]])
    gts = [torch.tensor([[0.5, 2.0]]), torch.tensor([[2.0, 3.0], [0.0, 1.0]])]
    # [0,1] vs [0.5,2]: 0.5 / 2; [0,2]: 1.5 / 2; [1,3]: 1 / 2.5. Second sample: best of two ground truths
    assert torch.allclose(proposal_iou_targets(proposals, gts),
                          torch.tensor([[0.25, 0.75, 0.4], [1.0, 0.5, 0.5]]), rtol=0, atol=1e-7)


def test_losses_use_the_valid_entries_in_map_order():
    head = _head().double()
    proposal_map, valid = build(dict(type="DenseProposalMap", tscale=3, dscale=3), ROI_HEADS)()
    logits = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    gt = [torch.tensor([[0.0, 2.0]], dtype=torch.float64)]
    torch.manual_seed(5)
    losses = head.losses(logits, proposal_map, valid, gt)
    # valid entries in (d, t) order: [0,1] [1,2] [2,3] [0,2] [1,3] [0,3]; IoU with [0,2] (float32, the map's dtype):
    ious = torch.tensor([[1.0, 1.0, 0.0, 2.0, 1.0, 2.0]]) / torch.tensor([[2.0, 2.0, 3.0, 2.0, 3.0, 3.0]])
    prob = logits[:, :, valid].sigmoid()
    assert math.isclose(losses["loss_cls"].item(), BalancedBCELoss(pos_thresh=0.9)(prob[:, 0], ious).item(),
                        rel_tol=1e-12)
    torch.manual_seed(5)
    reg = BalancedL2Loss(high_thresh=0.7, low_thresh=0.3, weight=5.0)(prob[:, 1], ious)
    assert math.isclose(losses["loss_reg"].item(), reg.item(), rel_tol=1e-12)


def test_missing_loss_is_named():
    with pytest.raises(KeyError, match="reg_loss"):
        build(dict(type="PEMHead", in_channels=4, feat_channels=6, num_convs=2, num_classes=2,
                   loss=dict(cls_loss=LOSS["cls_loss"])), ROI_HEADS)
