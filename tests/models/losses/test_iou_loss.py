"""DIoU/GIoU losses and the segment overlap helpers against hand-worked values."""
import pytest
import torch

from opentad.models.losses import DIOULoss, GIOULoss
from opentad.models.utils.iou_tools import compute_diou_torch, compute_iou_torch, segment_iou_aligned
from opentad.registry import LOSSES, build

PRED = torch.tensor([[0.0, 4.0], [1.0, 3.0], [0.0, 1.0], [0.0, 10.0]])
TARGET = torch.tensor([[2.0, 6.0], [1.0, 3.0], [3.0, 4.0], [4.0, 6.0]])
# pair 0: inter 2, union 6, IoU 1/3; enclosing 6, centres 2 and 4: DIoU = 1/3 - 4/36 = 2/9
# pair 1: identical: DIoU 1
# pair 2: disjoint: IoU 0; enclosing 4, centres 0.5 and 3.5: DIoU = -9/16
# pair 3: nested: IoU 2/10, same centre: DIoU 1/5
DIOU_LOSS = torch.tensor([7 / 9, 0.0, 25 / 16, 4 / 5])
# GIoU = IoU - (enclosing - union) / enclosing: 1/3 - 0, 1, 0 - (4 - 2)/4, 1/5 - 0
GIOU_LOSS = torch.tensor([2 / 3, 0.0, 1.5, 4 / 5])


def test_diou_loss_hand_values_and_reductions():
    loss = build(dict(type="DIOULoss"), LOSSES)
    torch.testing.assert_close(loss(PRED, TARGET), DIOU_LOSS)
    torch.testing.assert_close(loss(PRED, TARGET, reduction="sum"), DIOU_LOSS.sum())
    torch.testing.assert_close(loss(PRED, TARGET, reduction="mean"), DIOU_LOSS.mean())


def test_giou_loss_hand_values():
    torch.testing.assert_close(GIOULoss()(PRED, TARGET), GIOU_LOSS, rtol=1e-5, atol=1e-5)


def test_empty_mean_is_zero_and_differentiable():
    pred = torch.zeros(0, 2, requires_grad=True)
    value = DIOULoss()(pred, torch.zeros(0, 2), reduction="mean")
    value.backward()
    assert value.item() == 0.0 and pred.grad.shape == (0, 2)


def test_gradient_moves_prediction_towards_target():
    pred = torch.tensor([[0.0, 4.0]], requires_grad=True)
    DIOULoss()(pred, torch.tensor([[2.0, 6.0]]), reduction="sum").backward()
    assert (pred.grad < 0).all()  # both boundaries should increase


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="DIOULoss"):
        DIOULoss()(PRED, TARGET[:2])


def test_pairwise_helpers_match_aligned_and_hand_values():
    gts = torch.tensor([[2.0, 6.0], [0.0, 1.0]])
    anchors = torch.tensor([[0.0, 4.0], [3.0, 4.0], [10.0, 12.0]])
    iou = compute_iou_torch(gts, anchors)  # [M=3, N=2]
    expected = torch.tensor([[1 / 3, 1 / 4], [1 / 4, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(iou, expected)
    diou = compute_diou_torch(gts, anchors)
    for m in range(3):
        for n in range(2):
            single = 1 - DIOULoss()(anchors[m : m + 1], gts[n : n + 1])
            torch.testing.assert_close(diou[m, n], single[0])
    torch.testing.assert_close(segment_iou_aligned(anchors[:2], gts), torch.tensor([1 / 3, 0.0]))
