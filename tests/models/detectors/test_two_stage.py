"""TwoStageDetector: the loss sum, the rpn x roi score product, the one-class selection, a missing roi_head.

Stub stages with hand-set outputs stand in for real heads, so every expected value is written by hand.
"""
import pytest
import torch
import torch.nn as nn

from opentad.models.detectors import TwoStageDetector
from opentad.registry import DETECTORS, ConfigError, build


class StubRPN(nn.Module):
    def __init__(self, proposals, scores):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(2.0))
        self.proposals, self.scores = proposals, scores

    def forward_train(self, feats, masks, gt_segments, gt_labels):
        return {"loss_rpn": self.weight * feats.mean()}, self.proposals

    def forward_test(self, feats, masks):
        return self.proposals, self.scores


class StubROI(nn.Module):
    def __init__(self, proposals, scores):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(3.0))
        self.proposals, self.scores = proposals, scores
        self.seen = None

    def forward_train(self, feats, proposals, gt_segments, gt_labels):
        self.seen = proposals
        return {"loss_roi": self.weight * feats.sum()}

    def forward_test(self, feats, proposals):
        self.seen = proposals
        return self.proposals, self.scores


def _meta(name):
    return dict(video_name=name, fps=1.0, duration=100.0, snippet_stride=1, offset_frames=0)


def test_losses_sum_to_cost_and_the_roi_head_gets_the_rpn_proposals():
    marker = [torch.zeros(1, 2)]
    model = TwoStageDetector(rpn_head=StubRPN(marker, None), roi_head=StubROI(None, None))
    inputs = torch.tensor([[[1.0, 2.0, 3.0]]])
    losses = model(inputs, torch.ones(1, 3, dtype=torch.bool), [_meta("v")], [torch.zeros(1, 2)], [torch.zeros(1)])
    assert losses["loss_rpn"].item() == 2.0 * 2.0 and losses["loss_roi"].item() == 3.0 * 6.0
    assert losses["cost"].item() == 4.0 + 18.0
    assert model.roi_head.seen is marker
    losses["cost"].backward()
    assert model.rpn_head.weight.grad.item() == 2.0 and model.roi_head.weight.grad.item() == 6.0


def test_scores_are_rpn_times_roi_and_one_class_keeps_every_segment_with_label_zero():
    segments = [torch.tensor([[0.0, 4.0], [10.0, 20.0], [30.0, 31.0]])]
    rpn_scores = [torch.tensor([0.5, 0.1, 0.01])]
    roi_scores = [torch.tensor([[0.8], [0.5], [0.05]])]
    model = TwoStageDetector(rpn_head=StubRPN(segments, rpn_scores), roi_head=StubROI(segments, roi_scores))
    preds = model.forward_test(torch.zeros(1, 1, 8), torch.ones(1, 8, dtype=torch.bool))
    [(proposals, scores)] = model.video_predictions(preds)
    assert torch.equal(scores, torch.tensor([[0.5 * 0.8], [0.1 * 0.5], [0.01 * 0.05]]))
    out = model.post_processing(preds, [_meta("v")], dict(sliding_window=False, nms=None))
    # 0.0005 is below the multi-class pre_nms_thresh 0.001 but one class applies no threshold (upstream)
    assert [d["segment"] for d in out["v"]] == [[0.0, 4.0], [10.0, 20.0], [30.0, 31.0]]
    assert [d["label"] for d in out["v"]] == [0, 0, 0]
    assert [d["score"] for d in out["v"]] == [0.4, 0.05, 0.0005]


def test_several_classes_go_through_the_threshold_and_topk():
    segments = [torch.tensor([[0.0, 4.0], [10.0, 20.0]])]
    rpn_scores = [torch.tensor([1.0, 0.5])]
    roi_scores = [torch.tensor([[0.3, 0.0005], [0.9, 0.4]])]
    model = TwoStageDetector(rpn_head=StubRPN(segments, rpn_scores), roi_head=StubROI(segments, roi_scores))
    preds = model.forward_test(torch.zeros(1, 1, 8), torch.ones(1, 8, dtype=torch.bool))
    out = model.post_processing(preds, [_meta("v")], dict(sliding_window=False, nms=None, pre_nms_topk=2))
    # products 0.3, 0.0005 (under 0.001: dropped), 0.45, 0.2; top 2 by score
    assert [(d["segment"], d["label"], d["score"]) for d in out["v"]] == [
        ([10.0, 20.0], 0, 0.45), ([0.0, 4.0], 0, 0.3)]


def test_a_missing_roi_head_is_reported_by_the_config_check():
    with pytest.raises(ConfigError, match="roi_head"):
        build(dict(type="TwoStageDetector", projection=None), DETECTORS)
