"""ETADRoIHead: per-stage heads and thresholds, shared targets, the cascade, stage weights and test averaging."""
import random

import pytest
import torch

from opentad.models.roi_heads.etad_roi_head import match_ground_truth
from opentad.models.roi_heads.proposal_head.etad_head import refine_proposals
from opentad.registry import ROI_HEADS, ConfigError, build


def _cfg(**stages):
    return dict(
        type="ETADRoIHead",
        stages=dict(dict(number=3, loss_weight=[1, 1, 1], pos_iou_thresh=[0.7, 0.8, 0.9]), **stages),
        proposal_generator=dict(type="ProposalMapSampling", tscale=16, dscale=8, sampling_ratio=0.25),
        proposal_roi_extractor=dict(
            type="ROIAlignExtractor", roi_size=4, extend_ratio=0.5, base_stride=1, method="align1d"
        ),
        proposal_head=dict(type="ETADHead", in_channels=8, roi_size=4, feat_channels=12, fcs_num=2, fcs_channels=6,
                           loss=dict(cls_weight=1.0, reg_weight=5.0, boundary_weight=10.0)),
    )


def _build(**stages):
    torch.manual_seed(0)
    return build(_cfg(**stages), ROI_HEADS)


GT = [torch.tensor([[2.0, 6.0], [9.0, 14.0]]), torch.tensor([[1.0, 4.0]])]


def test_one_head_per_stage_with_its_threshold_and_upstream_keys():
    head = _build()
    assert [h.pos_iou_thresh for h in head.proposal_heads] == [0.7, 0.8, 0.9]
    assert head.tscale == 16
    keys = head.state_dict()
    assert {k.split(".")[0] for k in keys} == {"proposal_heads"}
    assert {k.split(".")[1] for k in keys} == {"0", "1", "2"}
    assert "proposal_heads.2.reg_head.head.weight" in keys


def test_bad_stages_are_reported():
    with pytest.raises(ConfigError, match="number=3 needs as many"):
        _build(pos_iou_thresh=[0.7, 0.8])
    with pytest.raises(ConfigError, match="stages"):
        _build(numbr=3)


def test_match_ground_truth_hand_worked():
    gt = torch.tensor([[0.0, 4.0], [6.0, 10.0]])
    proposals = torch.tensor([[[1.0, 3.0], [5.0, 9.0], [4.0, 6.0], [3.0, 7.0]]])
    # IoUs: [1, 3] 0.5 / 0; [5, 9] 0 / 0.6; [4, 6] 0 / 0 (tie: the first); [3, 7] 1/7 / 1/7 (tie: the first)
    assert match_ground_truth([gt], proposals).tolist() == [[[0, 4], [6, 10], [0, 4], [0, 4]]]


def _spy(head):
    """Record the proposals the extractor receives at each stage."""
    seen = []
    extract = head.proposal_roi_extractor.forward
    head.proposal_roi_extractor.forward = lambda x, p: (seen.append(p.clone()), extract(x, p))[1]
    return seen


def test_training_cascade_refines_for_the_next_stage_and_weights_each_stage():
    head = _build(loss_weight=[1.0, 2.0, 0.5])
    x = torch.randn(2, 8, 16)
    seen = _spy(head)
    matched = []
    for stage in head.proposal_heads:  # record the ground truth each stage is given
        record = stage.forward_train
        stage.forward_train = lambda *a, f=record: (matched.append(a[-1]), f(*a))[1]
    random.seed(0)
    torch.manual_seed(5)
    losses = head.forward_train(x, None, GT, None)
    assert all(torch.equal(m, match_ground_truth(GT, seen[0])) for m in matched)  # the initial proposals' match
    assert list(losses) == ["loss_pem.s0", "loss_pem.s1", "loss_pem.s2"]
    assert seen[0].shape == (2, head.proposal_generator.sample_num, 2) and not torch.equal(seen[0][0], seen[0][1])
    for stage in range(2):
        feats = head.proposal_roi_extractor(x, seen[stage])
        _, reg, _ = head.proposal_heads[stage].predict(feats)
        assert torch.equal(seen[stage + 1], refine_proposals(seen[stage], reg))
    # the same draws with unit weights: stage i's loss is divided by its weight, the matched ground truth is shared
    unit = _build()
    unit.load_state_dict(head.state_dict())
    seen_unit = _spy(unit)
    random.seed(0)
    torch.manual_seed(5)
    plain = unit.forward_train(x, None, GT, None)
    assert torch.equal(seen_unit[0], seen[0])
    for name, weight in zip(plain, [1.0, 2.0, 0.5]):
        assert torch.equal(losses[name], plain[name] * weight)


def test_shared_targets_use_the_initial_proposals():
    head = _build()
    proposals = head.proposal_generator(bs=2, device="cpu")
    starts, ends, matched = head.prepare_shared_gt(GT, proposals)
    assert starts.shape == (2, 16) and starts[1].tolist()[:4] == [1, 1, 0, 0]  # start window [-0.5, 2.5] covers steps 0, 1
    assert torch.equal(matched, match_ground_truth(GT, proposals))


def test_seeded_losses_repeat_and_gradients_reach_every_head():
    head = _build(pos_iou_thresh=[0.3, 0.4, 0.5])  # low enough that every stage regresses some proposal
    x = torch.randn(2, 8, 16, requires_grad=True)
    runs = []
    for _ in range(2):
        random.seed(1)
        torch.manual_seed(1)
        runs.append(head.forward_train(x, None, GT, None))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    sum(runs[0].values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert x.grad.abs().sum() > 0


def test_test_mode_averages_the_stages():
    head = _build().eval()
    x = torch.randn(1, 8, 16)
    proposals, scores = head.forward_test(x)
    valid = head.proposal_generator(bs=1, device="cpu")
    assert proposals.shape == valid.shape == (1, 100, 2) and scores.shape == (1, 100, 2)
    current, refined, ious = valid, [], []
    for stage in head.proposal_heads:
        current, iou = stage.forward_test(head.proposal_roi_extractor(x, current), current)
        refined.append(current)
        ious.append(iou)
    assert torch.equal(proposals, torch.stack(refined, -1).mean(-1))
    assert torch.equal(scores, torch.stack(ious, -1).mean(-1))
