"""TemporalMaxerHead: targets from the assigner, weighted losses, upstream's normalisers, config keys.

The reference losses are evaluated in float64 from the head's own float32 predictions. Error model: each
per-point term (focal loss of one logit, ``1 - DIoU`` of one pair) takes at most ~20 float32 roundings and
the float32 sum of ``n`` terms adds at most ``n`` more, so ``|ours - ref| <= (20 + n) 2^-24 sum|terms|``
(divided by the normaliser).
"""
import torch
import pytest

from opentad.models.dense_heads import TemporalMaxerHead
from opentad.models.dense_heads.point_assigner import assign_points
from opentad.registry import HEADS, ConfigError, build

STRIDES = [1, 2]
U = 2.0**-24


def _head_cfg(**assigner):
    return dict(
        type="TemporalMaxerHead",
        num_classes=3,
        in_channels=4,
        feat_channels=4,
        num_convs=2,
        prior_generator=dict(type="PointGenerator", strides=STRIDES, regression_range=[(0, 4), (4, 100)]),
        loss=dict(cls_loss=dict(type="FocalLoss"), reg_loss=dict(type="DIOULoss")),
        assigner=dict(type="AnchorFreeSimOTAAssigner", **assigner),
    )


def _head(label_smoothing=0.0, **assigner):
    torch.manual_seed(0)
    head = build(dict(_head_cfg(**assigner), label_smoothing=label_smoothing), HEADS)
    with torch.no_grad():  # spread the predicted distances so that costs and weights differ between points
        head.reg_head.bias.copy_(torch.tensor([1.0, 2.0]))
    return head


def _inputs():
    torch.manual_seed(1)
    feats = [torch.randn(2, 4, 16), torch.randn(2, 4, 8)]
    masks = [torch.ones(2, 16, dtype=torch.bool), torch.ones(2, 8, dtype=torch.bool)]
    masks[0][1, 10:] = False
    masks[1][1, 5:] = False
    gts = [torch.tensor([[1.0, 4.0], [3.0, 12.0], [3.0, 12.0]]), torch.tensor([[2.0, 5.0]])]
    labels = [torch.tensor([2, 0, 1]), torch.tensor([1])]
    return feats, masks, gts, labels


def _focal64(x, t, alpha=0.25):
    p = x.sigmoid()
    ce = -(t * torch.log(p) + (1 - t) * torch.log1p(-p))
    p_t = p * t + (1 - p) * (1 - t)
    return ce * (1 - p_t) ** 2 * (alpha * t + (1 - alpha) * (1 - t))


def _diou_loss64(a, b):
    inter = (torch.minimum(a[:, 1], b[:, 1]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    union = (a[:, 1] - a[:, 0]) + (b[:, 1] - b[:, 0]) - inter
    enclosing = torch.maximum(a[:, 1], b[:, 1]) - torch.minimum(a[:, 0], b[:, 0])
    centre = (a.sum(1) - b.sum(1)) / 2
    return 1 - inter / union + centre**2 / enclosing**2


def _reference(head, feats, masks, gts, labels, smoothing):
    """Weighted terms in float64 from the head's predictions and the assigner's output (the definition)."""
    cls_pred, reg_pred = head.forward_levels(feats, masks)
    points = torch.cat(head.prior_generator(feats))
    logits = torch.cat(cls_pred, -1).transpose(1, 2).detach()
    dist = torch.cat(reg_pred, -1).transpose(1, 2).detach()
    valid = torch.cat(masks, 1)
    cls_terms, reg_terms, num_pos = [], [], 0
    for b in range(2):
        matching, min_inds, weights = head.assigner.assign(logits[b], points, dist[b], gts[b], labels[b], valid[b])
        target = (matching @ torch.nn.functional.one_hot(labels[b], 3).float()).clamp(max=1).double()
        pos = (target.sum(1) > 0) & valid[b]
        num_pos += int(pos.sum())
        w = torch.where(pos, weights, torch.ones_like(weights)).double()
        smoothed = target * (1 - smoothing) + smoothing / 4
        cls_terms.append((_focal64(logits[b].double(), smoothed) * w[:, None])[valid[b]].flatten())
        p, s = points[pos, 0].double(), points[pos, 3].double()
        seg = gts[b][min_inds[pos]].double()
        pred = torch.stack([p - dist[b][pos, 0].double() * s, p + dist[b][pos, 1].double() * s], -1)
        reg_terms.append(_diou_loss64(pred, seg) * weights[pos].double())
    return torch.cat(cls_terms), torch.cat(reg_terms), num_pos


def _close(value, terms, normalizer):
    bound = (20 + terms.numel()) * U * terms.abs().sum().item() / normalizer
    assert abs(value.item() - terms.sum().item() / normalizer) <= bound, (value.item(), terms.sum().item() / normalizer)


@pytest.mark.parametrize("assigner", [
    dict(iou_weight=2, cls_weight=1.0, center_radius=1.5, keep_percent=1.0, confuse_weight=0.0),  # upstream config
    dict(iou_weight=3.0, cls_weight=1.0, center_radius=2.5, keep_percent=0.65, confuse_weight=0.1),  # defaults
])
def test_training_losses_follow_the_definition(assigner):
    head = _head(label_smoothing=0.1, **assigner)
    feats, masks, gts, labels = _inputs()
    losses = head.forward_train(feats, masks, gts, labels)
    cls_terms, reg_terms, num_pos = _reference(head, feats, masks, gts, labels, 0.1)
    assert num_pos > 0
    normalizer = 0.9 * 100 + 0.1 * num_pos  # one EMA step from 100, dividing both losses
    assert head.loss_normalizer.item() == pytest.approx(normalizer, rel=4 * U)
    _close(losses["cls_loss"], cls_terms, normalizer)
    _close(losses["reg_loss"], reg_terms, normalizer)


def test_confuse_weight_shows_in_the_losses():
    feats, masks, gts, labels = _inputs()
    low = _head(iou_weight=3.0, keep_percent=0.3, confuse_weight=0.0).forward_train(feats, masks, gts, labels)
    high = _head(iou_weight=3.0, keep_percent=0.3, confuse_weight=1.0).forward_train(feats, masks, gts, labels)
    assert low["reg_loss"] < high["reg_loss"] and low["cls_loss"] < high["cls_loss"]


def test_eval_mode_divides_cls_by_the_buffer_and_reg_by_the_count():
    """Upstream's quirk: in eval mode the classification loss keeps the running normaliser."""
    head = _head(iou_weight=3.0, keep_percent=0.65, confuse_weight=0.1)
    head.loss_normalizer.fill_(87.25)
    head.eval()
    feats, masks, gts, labels = _inputs()
    losses = head.forward_train(feats, masks, gts, labels)
    assert head.loss_normalizer.item() == 87.25
    cls_terms, reg_terms, num_pos = _reference(head, feats, masks, gts, labels, 0.0)
    _close(losses["cls_loss"], cls_terms, 87.25)
    _close(losses["reg_loss"], reg_terms, num_pos)


def test_targets_regress_to_the_least_cost_segment():
    # the hand-worked case of tests/models/losses/assigner: point 3 is matched to A = [1, 4] (class 2)
    # but regresses to C = [3, 9], which it predicts exactly
    points = torch.tensor(
        [[float(p), 0.0, 4.0, 1.0] for p in range(8)] + [[float(p), 4.0, 100.0, 2.0] for p in (0, 2, 4, 6)]
    )
    segments, labels = torch.tensor([[1.0, 4.0], [0.0, 12.0], [3.0, 9.0]]), torch.tensor([2, 0, 1])
    distances = torch.ones(1, 12, 2)
    distances[0, 3] = torch.tensor([0.0, 6.0])
    head = _head(iou_weight=2.0, center_radius=1.5, keep_percent=1.0, confuse_weight=0.0)
    gt_cls, gt_reg, weights = head.assign_targets(
        points, torch.ones(1, 12, dtype=torch.bool), torch.zeros(1, 12, 3), distances, [segments], [labels]
    )
    assert gt_cls[0, 3].tolist() == [0.0, 0.0, 1.0]
    assert gt_reg[0, 3].tolist() == [0.0, 6.0]
    assert assign_points(points, segments, labels, num_classes=3)[1][3].tolist() == [2.0, 1.0]
    # the other positives predict (1, 1) strides. Level 0 p = 5, 6, 7 lie inside B and C; C costs less
    # (p = 5: C (2, 4) 1 - 1/3 + 1/36, B (5, 7) 1 - 1/6 + 1/144). Level 1 (stride 2), p = 4: A 0.69, B 0.694,
    # C 4/7 + 1/12.25 = 0.653 -> C, (1, 5) / 2. p = 6 is matched to B (class 0) but C (1.5, 1.5) costs
    # 1 - 2/3 against B's (3, 3) 1 - 1/3 -> regression to C.
    assert gt_cls[0, 11].tolist() == [1.0, 0.0, 0.0]
    assert gt_reg[0, [5, 6, 7, 10, 11]].tolist() == [[2, 4], [3, 3], [4, 2], [0.5, 2.5], [1.5, 1.5]]
    assert weights.tolist() == [[1.0] * 12]


def test_sample_without_segments():
    head = _head(iou_weight=2.0)
    feats, masks, _, _ = _inputs()
    gts = [torch.zeros(0, 2), torch.tensor([[2.0, 5.0]])]
    labels = [torch.zeros(0, dtype=torch.long), torch.tensor([1])]
    losses = head.forward_train(feats, masks, gts, labels)
    assert all(torch.isfinite(v) for v in losses.values())


def test_config_keys_are_upstreams():
    head = build(_head_cfg(iou_weight=2), HEADS)
    assert isinstance(head, TemporalMaxerHead) and head.assigner.iou_weight == 2
    assert not any("assigner" in k for k in head.state_dict())  # the assigner holds no state
    with pytest.raises(ConfigError, match="center_sample"):  # upstream's TemporalMaxerHead has no such key
        build(dict(_head_cfg(), center_sample="radius"), HEADS)
    cfg = _head_cfg()
    del cfg["assigner"]
    with pytest.raises(ConfigError, match="assigner"):
        build(cfg, HEADS)
