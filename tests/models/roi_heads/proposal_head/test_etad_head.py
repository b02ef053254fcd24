"""ETADHead: upstream's state-dict keys, hand-worked decoding and targets, the loss against upstream's formula."""
import math

import pytest
import torch
import torch.nn.functional as F

from opentad.models.roi_heads.proposal_head.etad_head import ETADHead, refine_proposals, regression_targets
from opentad.registry import ROI_HEADS, ConfigError, build

EPS = 1e-6


def _head(**loss):
    return ETADHead(in_channels=6, roi_size=4, feat_channels=10, fcs_num=2, fcs_channels=5, loss=loss or None)


def _upstream_keys(fcs_num):
    keys = ["shared_conv_fc.fcs.0.0.weight", "shared_conv_fc.fcs.0.0.bias"]
    for head in ("iou_head", "se_head", "reg_head"):
        for i in range(fcs_num):
            keys += [f"{head}.fcs.{i}.0.weight", f"{head}.fcs.{i}.0.bias"]
        keys += [f"{head}.head.weight", f"{head}.head.bias"]
    return keys


def test_state_dict_loads_upstreams_keys_strictly():
    head = _head()
    shapes = {"shared_conv_fc.fcs.0.0.weight": (10, 24), "iou_head.fcs.0.0.weight": (5, 10),
              "iou_head.fcs.1.0.weight": (5, 5), "iou_head.head.weight": (2, 5), "se_head.head.weight": (2, 5),
              "reg_head.head.weight": (4, 5)}
    state = head.state_dict()
    assert sorted(state) == sorted(_upstream_keys(2))
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    # upstream's init: Xavier-uniform weights, zero biases
    assert all(float(v.abs().max()) == 0 for k, v in state.items() if k.endswith("bias"))
    head.load_state_dict({k: torch.randn_like(v) for k, v in state.items()}, strict=True)


def test_refine_proposals_hand_worked():
    """Anchor [2, 6] (length 4, centre 4), offsets (0.25, 0.75, 0.5, ln 2).

    Boundary decoding: length 4 + 4 (0.75 - 0.25) = 6, centre 4 + 4 (0.25 + 0.75) / 2 = 6 -> [3, 9];
    centre/width decoding: centre 4 + 0.5 * 4 = 6, length 4 * 2 = 8 -> [2, 10]; mean [2.5, 9.5].
    """
    anchors = torch.tensor([[[2.0, 6.0]]])
    regs = torch.tensor([[[0.25, 0.75, 0.5, math.log(2.0)]]], requires_grad=True)
    out = refine_proposals(anchors, regs)
    assert torch.allclose(out, torch.tensor([[[2.5, 9.5]]]), rtol=0, atol=8 * 2**-24 * 10)  # a few roundings of ~10
    assert not out.requires_grad


def test_regression_targets_hand_worked():
    gt = torch.tensor([[[3.0, 7.0], [2.0, 4.0]]])
    anchors = torch.tensor([[[2.0, 6.0], [2.0, 6.0]]])
    out = regression_targets(gt, anchors)
    # (3 - 2) / 4, (7 - 6) / 4, their mean, log(4 / 4 + 1e-6); then (0, -0.5, -0.25, log(0.5 + 1e-6))
    expected = torch.tensor([[[0.25, 0.25, 0.25, math.log(1 + EPS)], [0.0, -0.5, -0.25, math.log(0.5 + EPS)]]])
    assert torch.allclose(out, expected, rtol=0, atol=4 * 2**-24)


def test_prepare_targets_gathers_boundaries_at_truncated_clamped_steps():
    head = _head()
    gt_starts = torch.tensor([[0, 1, 0, 0, 1]])
    gt_ends = torch.tensor([[1, 0, 0, 1, 0]])
    proposals = torch.tensor([[[1.7, 3.2], [-0.5, 9.0], [4.0, 4.5]]])
    matched = torch.tensor([[[1.0, 3.0], [1.0, 3.0], [4.0, 5.0]]])
    gt_iou, gt_reg, gt_s, gt_e = head.prepare_targets(proposals, gt_starts, gt_ends, matched)
    # IoU: [1.7, 3.2] vs [1, 3] = 1.3 / 2.2; [-0.5, 9] vs [1, 3] = 2 / 9.5; [4, 4.5] vs [4, 5] = 0.5
    assert torch.allclose(gt_iou, torch.tensor([[1.3 / 2.2, 2 / 9.5, 0.5]]), rtol=4 * 2**-24, atol=0)
    # steps: starts 1, 0 (-0.5 truncates to 0), 4; ends 3, 4 (9 clamps to T - 1), 4
    assert gt_s.tolist() == [[1, 0, 1]] and gt_e.tolist() == [[1, 0, 0]]
    assert gt_reg.shape == (1, 3, 4)


def _bl_sample(out, gt, thresh):
    pmask, nmask = (gt > thresh).float(), (gt <= thresh).float()
    if pmask.sum() == 0:
        return -torch.mean(torch.log(1.0 - out + EPS))
    keep = ((torch.rand(nmask.shape) * nmask) > (1 - pmask.sum() / nmask.sum())).float()
    return -torch.sum(pmask * torch.log(out + EPS) + keep * torch.log(1.0 - out + EPS)) / (pmask.sum() + keep.sum())


def _l2_sample(out, gt):
    h, m, low = (gt > 0.7).float(), ((gt <= 0.7) & (gt > 0.3)).float(), (gt <= 0.3).float()
    if h.sum() == 0:
        return F.mse_loss(out, gt)
    keep_m = ((torch.rand(h.shape) * m) > (1 - h.sum() / m.sum())).float()
    keep_l = ((torch.rand(h.shape) * low) > (1 - h.sum() / low.sum())).float()
    mask = h + keep_m + keep_l
    return torch.sum(F.mse_loss(out, gt, reduction="none") * mask) / torch.sum(mask)


def _smooth_l1(out, gt_iou, target, thresh):
    mask = (gt_iou > thresh).float()
    if mask.sum() == 0:
        return torch.tensor(0.0)
    return torch.sum(F.smooth_l1_loss(out, target, reduction="none") * mask) / torch.sum(mask)


def _upstream_loss(iou, reg, se, gt_iou, gt_reg, gt_s, gt_e, thresh, cls_w=1.0, reg_w=5.0, bnd_w=10.0):
    """Upstream ETADHead.losses, written from its formula (draws in upstream's order)."""
    loss_iou = _bl_sample(iou[..., 0], gt_iou, 0.9) * cls_w + _l2_sample(iou[..., 1], gt_iou) * reg_w
    loss_reg = bnd_w * sum(_smooth_l1(reg[..., i], gt_iou, gt_reg[..., i], thresh) for i in range(4))
    loss_cls = 0.5 * (_bl_sample(se[..., 0], gt_s, 0.5) + _bl_sample(se[..., 1], gt_e, 0.5))
    return loss_iou + loss_reg + loss_cls


@pytest.fixture
def batch():
    torch.manual_seed(0)
    starts = torch.randint(0, 20, (2, 60)).float()
    proposals = torch.stack((starts, starts + torch.randint(1, 12, (2, 60)).float()), dim=-1)
    matched = (proposals + torch.randn(2, 60, 2)).sort(dim=-1).values  # near ground truth: IoUs over every band
    gt_starts, gt_ends = torch.randint(0, 2, (2, 32)), torch.randint(0, 2, (2, 32))
    return torch.randn(2, 60, 6, 4), proposals, gt_starts, gt_ends, matched


def test_loss_is_upstreams_formula_with_the_same_draws(batch):
    feats, proposals, gt_starts, gt_ends, matched = batch
    head = _head(pos_iou_thresh=0.6, reg_weight=3.0)
    iou, reg, se = head.predict(feats)
    targets = head.prepare_targets(proposals, gt_starts, gt_ends, matched)
    assert (targets[0] > 0.9).any() and (targets[0] > 0.6).sum() < targets[0].numel()  # every term is active
    torch.manual_seed(11)
    reference = _upstream_loss(iou, reg, se, *targets, thresh=0.6, reg_w=3.0)
    torch.manual_seed(11)
    ours = head.losses(iou, reg, se, proposals, gt_starts, gt_ends, matched)["loss_pem"]
    assert torch.equal(ours, reference)


def test_forward_train_gradients_and_refinement(batch):
    feats, proposals, gt_starts, gt_ends, matched = batch
    head = _head()
    feats.requires_grad_(True)
    losses, refined = head.forward_train(feats, proposals, gt_starts, gt_ends, matched)
    assert list(losses) == ["loss_pem"] and not refined.requires_grad
    losses["loss_pem"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert feats.grad.abs().sum() > 0
    _, reg, _ = head.predict(feats)
    assert torch.equal(refined, refine_proposals(proposals, reg))


def test_forward_test_returns_refined_proposals_and_iou_probabilities(batch):
    feats, proposals = batch[:2]
    head = _head()
    refined, iou = head.forward_test(feats, proposals)
    assert refined.shape == (2, 60, 2) and iou.shape == (2, 60, 2)
    assert ((iou > 0) & (iou < 1)).all()


def test_loss_options_are_checked():
    head = build(dict(type="ETADHead", in_channels=6, roi_size=4, feat_channels=8, fcs_num=1, fcs_channels=4,
                      loss=dict(cls_weight=1.0, reg_weight=5.0, boundary_weight=10.0)), ROI_HEADS)
    assert head.pos_iou_thresh == 0.7
    with pytest.raises(ConfigError, match="boundry_weight"):
        _head(boundry_weight=1.0)
