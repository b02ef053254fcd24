"""VSGNRPNHead: output layout, the TEM input, and the targets of its two losses on a hand-worked case.

The case: one level of stride 4 on a 12-step window, one anchor scale: anchors a0 [0.5, 3.5], a1 [4.5, 7.5],
a2 [8.5, 11.5] ("+1" length 4). Ground truth g0 [0, 3.5] (class 4 -> label 5), g1 [7, 12] (class 9 -> 10).
With zero head weights the offsets are the biases: (-10, 0) moves every segment by -4:
a0' [-3.5, -0.5], a1' [0.5, 3.5], a2' [4.5, 7.5].
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.dense_heads.tem_head import TemporalEvaluationHead
from opentad.models.dense_heads.vsgn_rpn_head import VSGNRPNHead
from opentad.models.losses.balanced_ce_loss import BalancedCELoss

C = 32  # GroupNorm(32, C)
GTS = [torch.tensor([[0.0, 3.5], [7.0, 12.0]])]
LABELS = [torch.tensor([4, 9])]


class RecordingLoss(nn.Module):
    """A classification loss that records its targets and returns the logits' sum."""

    def forward(self, logits, labels, reduction="sum"):
        self.labels = labels.tolist()
        return logits.sum()


def make_head(num_classes=21, cls_loss=None, levels=(4,), tscale=12, scales=(1,)):
    torch.manual_seed(0)
    tem = TemporalEvaluationHead(in_channels=C, num_classes=3,
                                 loss=dict(pos_thresh=0.5, gt_type=["startness", "endness", "actionness"]))
    head = VSGNRPNHead(in_channels=C, num_layers=1, num_classes=num_classes, iou_thr=0.5,
                       anchor_generator=dict(pyramid_levels=list(levels), tscale=tscale, anchor_scale=list(scales)),
                       tem=tem, cls_loss=cls_loss if cls_loss is not None else BalancedCELoss())
    return head


def zero_heads(head, reg_bias, cls_bias=None):
    with torch.no_grad():
        head.reg_head.weight.zero_()
        head.reg_head.bias.copy_(torch.tensor(reg_bias))
        head.cls_head.weight.zero_()
        head.cls_head.bias.copy_(torch.tensor(cls_bias) if cls_bias is not None else 0 * head.cls_head.bias)


def test_layout_is_position_major_then_anchor_then_class():
    head = make_head(num_classes=3, levels=(2, 4), tscale=8, scales=(1, 1.5))
    zero_heads(head, [0.0] * 4, cls_bias=[0.0, 1.0, 2.0, 10.0, 11.0, 12.0])  # channel = anchor * K + class
    feats = [torch.randn(2, C, 4), torch.randn(2, C, 2)]
    logits, segments, tem_feat = head.predict(feats)
    assert logits.shape == (2, 12, 3) and segments.shape == (2, 12, 2)
    assert logits[1, 4].tolist() == [0.0, 1.0, 2.0] and logits[1, 5].tolist() == [10.0, 11.0, 12.0]
    assert torch.equal(segments[0], head.anchors)  # zero offsets decode to the anchors
    expected_tem = F.interpolate(feats[0], size=8, mode="linear", align_corners=True)
    assert torch.equal(tem_feat, expected_tem)
    tem_logits, test_segments, scores = head.forward_test(feats, None)
    assert torch.equal(tem_logits, head.tem_head.forward_test(expected_tem, None))
    assert torch.equal(scores, logits.softmax(-1)) and torch.equal(test_segments, segments)
    assert head.state_dict().keys() >= {"cls_tower.0.0.weight", "cls_tower.0.1.weight", "cls_tower.0.1.bias",
                                        "cls_head.weight", "reg_tower.0.0.weight", "reg_head.bias"}
    assert "anchors" not in head.state_dict()


def test_classification_labels_come_from_the_decoded_segments():
    recorder = RecordingLoss()
    head = make_head(cls_loss=recorder)
    zero_heads(head, [-10.0, 0.0])
    losses, segments = head.forward_train([torch.randn(1, C, 3)], None, gt_segments=GTS, gt_labels=LABELS)
    assert segments[0].tolist() == [[-3.5, -0.5], [0.5, 3.5], [4.5, 7.5]]
    # decoded: a1' covers g0 (iou 3 / 4.5), a2' is g1's best (0.5 / 8.5); a0' overlaps nothing.
    # (The anchors would give [5, 0, 10]: a0 covers g0, a2 reaches 0.5 with g1.)
    assert recorder.labels == [0, 5, 10]
    assert set(losses) == {"loss_tem", "loss_stage1_reg", "loss_stage1_cls"}
    assert losses["loss_stage1_cls"].item() == pytest.approx(0.0)  # zero logits summed
    # regression: anchors a0 -> g0, a2 -> g1 (anchor matching); 1 - giou of a0' with g0: disjoint, union 6.5,
    # enclosing 7 -> 1 + 0.5/7; of a2' with g1: overlap 0.5, union 7.5 = enclosing -> 1 - 1/15
    giou_sum = 1 + 0.5 / 7 + 1 - 1 / 15
    assert losses["loss_stage1_reg"].item() == pytest.approx(giou_sum / (0.9 * 100 + 0.1 * 2), rel=1e-6)
    head.forward_train([torch.randn(1, C, 3)], None, gt_segments=GTS, gt_labels=LABELS)
    assert head.normalizer_reg.value == pytest.approx(0.9 * 90.2 + 0.1 * 2)  # the EMA runs on


def test_one_class_binarises_labels_and_normalises_by_the_ema():
    recorder = RecordingLoss()
    head = make_head(num_classes=1, cls_loss=recorder)
    zero_heads(head, [-10.0, 0.0], cls_bias=[0.5])
    losses, _ = head.forward_train([torch.randn(1, C, 3)], None, gt_segments=GTS, gt_labels=LABELS)
    assert recorder.labels == [0, 1, 1]
    assert losses["loss_stage1_cls"].item() == pytest.approx(3 * 0.5 / (0.9 * 100 + 0.1 * 2), rel=1e-6)


def test_balanced_ce_on_hand_logits():
    head = make_head()
    zero_heads(head, [-10.0, 0.0], cls_bias=[2.0 if k == 5 else 0.0 for k in range(21)])
    losses, _ = head.forward_train([torch.randn(1, C, 3)], None, gt_segments=GTS, gt_labels=LABELS)
    ce_5 = -2.0 + math.log(math.exp(2.0) + 20)
    ce_other = math.log(math.exp(2.0) + 20)
    # labels [0, 5, 10]: positives 5 and 10, negative 0
    assert losses["loss_stage1_cls"].item() == pytest.approx((ce_5 + ce_other) / 2 + ce_other, rel=1e-6)


def test_segments_carry_gradient_to_the_regression_branch_only():
    head = make_head()
    _, segments = head.forward_train([torch.randn(1, C, 3)], None, gt_segments=GTS, gt_labels=LABELS)
    segments.sum().backward()
    assert head.reg_head.weight.grad.abs().sum() > 0 and head.reg_tower[0][0].weight.grad.abs().sum() > 0
    assert head.cls_head.weight.grad is None and head.tem_head.tem[0][0].conv.weight.grad is None


def test_wrong_input_length_is_reported():
    head = make_head()
    with pytest.raises(ValueError, match="tscale=12"):
        head.predict([torch.randn(1, C, 5)])


def test_anchor_generator_keys_are_checked():
    from opentad.registry import ConfigError

    with pytest.raises(ConfigError, match="anchor_scales"):
        VSGNRPNHead(anchor_generator=dict(pyramid_levels=[4], tscale=8, anchor_scales=[1]),
                    tem=nn.Identity(), cls_loss=BalancedCELoss())
