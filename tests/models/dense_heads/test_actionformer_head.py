"""ActionFormerHead: wiring of towers, losses, normaliser, proposals."""
import inspect
import math

import pytest
import torch

from opentad.models.dense_heads import ActionFormerHead
from opentad.models.dense_heads.point_assigner import assign_points
from opentad.models.losses import FocalLoss
from opentad.registry import HEADS, ConfigError, build

STRIDES = [1, 2]


def _head_cfg():
    return dict(
        type="ActionFormerHead",
        num_classes=3,
        in_channels=4,
        feat_channels=4,
        num_convs=2,
        prior_generator=dict(type="PointGenerator", strides=STRIDES, regression_range=[(0, 4), (4, 100)]),
        loss=dict(cls_loss=dict(type="FocalLoss"), reg_loss=dict(type="DIOULoss")),
    )


def _head(**overrides):
    cfg = dict(_head_cfg(), **overrides)
    torch.manual_seed(0)
    return build(cfg, HEADS)


def _inputs():
    torch.manual_seed(1)
    feats = [torch.randn(2, 4, 16), torch.randn(2, 4, 8)]
    masks = [torch.ones(2, 16, dtype=torch.bool), torch.ones(2, 8, dtype=torch.bool)]
    masks[0][1, 10:] = False
    masks[1][1, 5:] = False
    gts = [torch.tensor([[1.0, 4.0], [3.0, 12.0]]), torch.tensor([[2.0, 5.0]])]
    labels = [torch.tensor([2, 0]), torch.tensor([1])]
    return feats, masks, gts, labels


def test_losses_follow_the_definition():
    head = _head(label_smoothing=0.1)
    feats, masks, gts, labels = _inputs()
    losses = head.forward_train(feats, masks, gts, labels)

    cls_pred, reg_pred = head.forward_levels(feats, masks)
    points = torch.cat(head.prior_generator(feats))
    valid = torch.cat(masks, dim=1)
    targets = [assign_points(points, g, l, num_classes=3) for g, l in zip(gts, labels)]
    cls_t = torch.stack([t[0] for t in targets])
    pos = (cls_t.sum(-1) > 0) & valid
    num_pos = int(pos.sum())
    normalizer = 0.9 * 100 + 0.1 * num_pos  # one EMA step from the initial 100
    assert head.loss_normalizer.item() == pytest.approx(normalizer)

    logits = torch.cat(cls_pred, -1).transpose(1, 2)[valid]
    smoothed = cls_t[valid] * 0.9 + 0.1 / 4
    expected_cls = FocalLoss()(logits, smoothed, reduction="sum") / normalizer
    torch.testing.assert_close(losses["cls_loss"], expected_cls)

    dist = torch.cat(reg_pred, -1).transpose(1, 2)[pos]  # [num_pos, 2]
    pts = points[None].expand(2, -1, -1)[pos]
    pred_seg = torch.stack([pts[:, 0] - dist[:, 0] * pts[:, 3], pts[:, 0] + dist[:, 1] * pts[:, 3]], -1)
    gt_reg = torch.stack([t[1] for t in targets])[pos]
    gt_seg = torch.stack([pts[:, 0] - gt_reg[:, 0] * pts[:, 3], pts[:, 0] + gt_reg[:, 1] * pts[:, 3]], -1)
    inter = (torch.minimum(pred_seg[:, 1], gt_seg[:, 1]) - torch.maximum(pred_seg[:, 0], gt_seg[:, 0])).clamp(min=0)
    union = (pred_seg[:, 1] - pred_seg[:, 0]) + (gt_seg[:, 1] - gt_seg[:, 0]) - inter
    enclosing = torch.maximum(pred_seg[:, 1], gt_seg[:, 1]) - torch.minimum(pred_seg[:, 0], gt_seg[:, 0])
    centre = (pred_seg.sum(1) - gt_seg.sum(1)) / 2
    diou = inter / union - centre**2 / enclosing**2
    torch.testing.assert_close(losses["reg_loss"], (1 - diou).sum() / normalizer)


def test_eval_mode_normalises_by_the_count_and_keeps_the_buffer():
    head = _head().eval()
    feats, masks, gts, labels = _inputs()
    before = head.loss_normalizer.clone()
    head.forward_train(feats, masks, gts, labels)
    assert torch.equal(head.loss_normalizer, before)


def test_no_ground_truth_gives_zero_regression_loss_with_graph():
    head = _head()
    feats, masks, _, _ = _inputs()
    empty = [torch.zeros(0, 2), torch.zeros(0, 2)]
    losses = head.forward_train(feats, masks, empty, [torch.zeros(0, dtype=torch.long)] * 2)
    assert losses["reg_loss"].item() == 0 and torch.isfinite(losses["cls_loss"])
    (losses["cls_loss"] + losses["reg_loss"]).backward()


def test_adaptive_loss_weight():
    head = _head(loss_weight=0.0)
    feats, masks, gts, labels = _inputs()
    losses = head.forward_train(feats, masks, gts, labels)
    # reg_loss * cls / max(reg, 0.01) == cls whenever reg >= 0.01
    torch.testing.assert_close(losses["reg_loss"], losses["cls_loss"].detach())


def test_forward_test_returns_valid_points_only():
    head = _head()
    feats, masks, _, _ = _inputs()
    proposals, scores = head.forward_test(feats, masks)
    assert [p.shape for p in proposals] == [(24, 2), (15, 2)]
    assert [s.shape for s in scores] == [(24, 3), (15, 3)]
    assert all(((s > 0) & (s < 1)).all() for s in scores)
    # a proposal surrounds its point: start <= position <= end
    positions = torch.cat([torch.arange(16.0), torch.arange(8.0) * 2])
    assert (proposals[0][:, 0] <= positions + 1e-6).all() and (proposals[0][:, 1] >= positions - 1e-6).all()


def test_prior_bias_and_state_dict_names():
    head = _head(cls_prior_prob=0.01)
    torch.testing.assert_close(head.cls_head.bias, torch.full((3,), -math.log(99.0)))
    keys = set(head.state_dict())
    expected = {"loss_normalizer", "cls_head.weight", "cls_head.bias", "reg_head.weight", "reg_head.bias"}
    expected |= {f"{t}.{i}.{n}" for t in ("cls_convs", "reg_convs") for i in range(2)
                 for n in ("conv.weight", "norm.weight", "norm.bias")}
    expected |= {f"scale.{i}.scale" for i in range(len(STRIDES))}
    assert keys == expected
    assert head.loss_normalizer.dtype == torch.float32 and head.loss_normalizer.shape == ()


def test_from_config_takes_only_the_configs_it_builds():
    """from_config names the two configs it builds; every other key reaches the constructor unchanged."""
    params = inspect.signature(ActionFormerHead.from_config).parameters
    assert [n for n, p in params.items() if p.kind is not p.VAR_KEYWORD] == ["prior_generator", "loss"]
    head = _head(loss_weight=2.5, center_sample=None, filter_similar_gt=False, loss_normalizer=7.0)
    assert (head.loss_weight, head.center_sample, head.filter_similar_gt) == (2.5, None, False)
    assert head.loss_normalizer.item() == 7.0 and head.prior_generator.strides == STRIDES


def test_built_objects_are_not_config_keys():
    """cls_loss is a constructor keyword that from_config makes: a config giving it is refused, naming it."""
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['cls_loss'\]"):
        _head(cls_loss=dict(type="FocalLoss"))
    with pytest.raises(ConfigError, match=r"missing required config key\(s\) \['num_classes'\]"):
        build({k: v for k, v in _head_cfg().items() if k != "num_classes"}, HEADS)


def test_loss_config_keys_are_checked():
    with pytest.raises(ValueError, match="cls_loss"):
        _head(loss=dict(cls_loss=dict(type="FocalLoss")))
