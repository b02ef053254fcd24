"""TSIHead: the scale-invariant confidence loss on the valid map entries, regression on its IoUs.

Error model: the confidence loss is a float32 sum of 5 terms ``c w (-log p)``, within
``16 * 2^-24 * sum|terms|`` of the float64 hand value, plus the float32 rounding of the logits fed in
(``|logit| u``, moved through sigmoid' <= 1/4 and a log by at most ``1 / min(p, 1 - p)``).
"""
import math

import torch

from opentad.registry import ROI_HEADS, build

U32 = 2.0**-24
LOSS = dict(
    cls_loss=dict(type="ScaleInvariantLoss", pos_thresh=0.5),
    reg_loss=dict(type="BalancedL2Loss", high_thresh=0.7, low_thresh=0.3, weight=5.0),
)


def head_of(kind, loss=LOSS):
    torch.manual_seed(0)
    return build(dict(type=kind, in_channels=3, feat_channels=4, num_classes=2, num_convs=1, kernel_size=1,
                      loss=loss), ROI_HEADS)


def test_losses_by_hand_on_the_valid_cells():
    head = head_of("TSIHead")
    proposal_map, valid = build(dict(type="DenseProposalMap", tscale=3, dscale=2), ROI_HEADS)()
    # valid cells, row-major: [0,1] [1,2] [2,3] (duration 1), [0,2] [1,3] (duration 2); cell (1, 2) is invalid.
    # Ground truth [0, 2], pos_thresh 0.5: IoUs 0.5, 0.5, 0, 1, 1/3 -> one positive ([0,2], weight 1/1),
    # 4 negatives sharing 1 ground truth (weight 1/4 each); alpha 0.2; batch of 1.
    probs = {(0, 0): 0.2, (0, 1): 0.3, (0, 2): 0.1, (1, 0): 0.7, (1, 1): 0.4}
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    pred = torch.full((1, 2, 2, 3), 50.0)  # the invalid cell's huge logit must be ignored
    for (d, t), p in probs.items():
        pred[0, 0, d, t] = logit(p)
    pred[0, 1] = torch.tensor([[0.1, -0.2, 0.3], [0.5, 0.0, 9.0]])
    gt = [torch.tensor([[0.0, 2.0]])]
    losses = head.losses(pred, proposal_map, valid, gt)
    terms = [0.2 * -math.log(0.7)] + [0.8 * 0.25 * -math.log(1 - probs[c]) for c in [(0, 0), (0, 1), (0, 2), (1, 1)]]
    rounding = sum((abs(logit(p)) / 4 + 1) * U32 / min(p, 1 - p) for p in probs.values())
    assert abs(losses["loss_cls"].item() - sum(terms)) <= 16 * U32 * sum(terms) + rounding
    # the regression sees the same IoUs as BMN's PEM computes itself: same value as PEMHead's loss_reg
    pem = head_of("PEMHead", dict(LOSS, cls_loss=dict(type="BalancedBCELoss", pos_thresh=0.9)))
    assert torch.equal(losses["loss_reg"], pem.losses(pred, proposal_map, valid, gt)["loss_reg"])


def test_same_keys_as_pem_and_gradients_reach_every_parameter():
    head = head_of("TSIHead")
    pem = head_of("PEMHead", dict(LOSS, cls_loss=dict(type="BalancedBCELoss", pos_thresh=0.9)))
    assert {k: v.shape for k, v in head.state_dict().items()} == {k: v.shape for k, v in pem.state_dict().items()}
    proposal_map, valid = build(dict(type="DenseProposalMap", tscale=6, dscale=4), ROI_HEADS)()
    feats = torch.randn(2, 3, 4, 6)
    losses = head.forward_train(feats, proposal_map, valid, [torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 5.0]])])
    sum(losses.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
