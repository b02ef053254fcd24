"""VSGNRoIHead: refinement adds the two branches' offsets; the loss matches the *input* segments."""
import pytest
import torch

from opentad.models.roi_heads.roi_extractors.corner_extractor import CornerExtractor
from opentad.models.roi_heads.vsgn_roi_head import VSGNRoIHead
from opentad.registry import ROI_HEADS, build


def make_head(start_bias=0.0, end_bias=0.0):
    torch.manual_seed(0)
    head = VSGNRoIHead(in_channels=4, iou_thr=0.7, extractor=CornerExtractor(beta=8.0, base_stride=1, tscale=16))
    with torch.no_grad():
        for branch, bias in ((head.start_conv, start_bias), (head.end_conv, end_bias)):
            branch[2].weight.zero_()
            branch[2].bias.fill_(bias)
    return head


def test_upstream_keys_and_config():
    head = build(dict(type="VSGNRoIHead", in_channels=4, iou_thr=0.7, loss_loc=dict(type="GIoULoss"),
                      roi_extractor=dict(type="CornerExtractor", beta=8.0, base_stride=2, tscale=16)), ROI_HEADS)
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == {
        "start_conv.0.weight": (4, 4, 3), "start_conv.0.bias": (4,),
        "start_conv.2.weight": (1, 4, 1), "start_conv.2.bias": (1,),
        "end_conv.0.weight": (4, 4, 3), "end_conv.0.bias": (4,),
        "end_conv.2.weight": (1, 4, 1), "end_conv.2.bias": (1,),
    }


def test_refinement_and_loss_by_hand():
    head = make_head(start_bias=-1.0, end_bias=0.5)
    feats = [torch.randn(1, 4, 16, requires_grad=True)]
    proposals = torch.tensor([[[2.0, 9.0], [3.0, 6.0], [12.0, 14.0]]], requires_grad=True)
    refined = head.forward_test(feats, proposals)
    assert refined.tolist() == [[[1.0, 9.5], [2.0, 6.5], [11.0, 14.5]]]
    gts = [torch.tensor([[2.0, 9.0]])]
    losses = head.forward_train(feats, proposals, gts, [torch.tensor([0])])
    # input [2, 9] vs [2, 9]: iou 7 / 8 ("+1") >= 0.7; [3, 6]: 3 / 8; [12, 14]: 0 -> one positive.
    # refined [1, 9.5] vs [2, 9]: overlap 7, union 8.5 = enclosing -> 1 - 7/8.5
    expected = (1 - 7 / 8.5) / (0.9 * 100 + 0.1 * 1)
    assert losses["loss_stage2_loc"].item() == pytest.approx(expected, rel=1e-6)
    losses["loss_stage2_loc"].backward()
    # the loss trains the branches' outputs (the zeroed last convs stop it there) and, through the sum, the
    # positive incoming segment
    assert proposals.grad[0, 0].abs().sum() > 0 and proposals.grad[0, 1:].abs().sum() == 0
    assert head.start_conv[2].weight.grad.abs().sum() > 0 and head.end_conv[2].bias.grad.abs().sum() > 0
