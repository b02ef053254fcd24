"""TriDetHead: Trident bins by hand, targets per (point, class), losses against a loop reference, gradients."""
import math

import pytest
import torch

from opentad.models.dense_heads.point_assigner import assign_points
from opentad.models.dense_heads.tridet_head import boundary_windows, decode_trident
from opentad.models.losses import DIOULoss, FocalLoss, GIOULoss
from opentad.registry import HEADS, ConfigError, build

STRIDES = [1, 2]
NUM_BINS = 2


def _head(**overrides):
    cfg = dict(
        type="TriDetHead",
        num_classes=3,
        in_channels=4,
        feat_channels=4,
        num_convs=2,
        prior_generator=dict(type="PointGenerator", strides=STRIDES, regression_range=[(0, 4), (4, 100)]),
        num_bins=NUM_BINS,
        loss=dict(cls_loss=dict(type="FocalLoss"), reg_loss=dict(type="DIOULoss"), iou_rate=dict(type="GIOULoss")),
    )
    cfg.update(overrides)
    torch.manual_seed(0)
    return build(cfg, HEADS)


def _inputs():
    torch.manual_seed(1)
    feats = [torch.randn(2, 4, 16, requires_grad=True), torch.randn(2, 4, 8, requires_grad=True)]
    masks = [torch.ones(2, 16, dtype=torch.bool), torch.ones(2, 8, dtype=torch.bool)]
    masks[0][1, 10:] = False
    masks[1][1, 5:] = False
    # sample 0: two segments of one length and different classes (points in both get two classes)
    gts = [torch.tensor([[1.0, 4.0], [2.0, 5.0], [3.0, 12.0]]), torch.tensor([[2.0, 5.0]])]
    labels = [torch.tensor([2, 0, 1]), torch.tensor([1])]
    return feats, masks, gts, labels


def test_boundary_windows_by_hand():
    logits = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])  # [B=1, C=1, T=4]
    start = boundary_windows(logits, 2, start=True)[0, :, 0]  # [T, 3]: steps t-2, t-1, t
    end = boundary_windows(logits, 2, start=False)[0, :, 0]  # steps t, t+1, t+2
    assert torch.equal(start, torch.tensor([[0.0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]]))
    assert torch.equal(end, torch.tensor([[1.0, 2, 3], [2, 3, 4], [3, 4, 0], [4, 0, 0]]))
    assert boundary_windows(torch.zeros(2, 5, 7), 3, start=True).shape == (2, 7, 5, 4)


def test_trident_decoding_by_hand():
    # n = 2, offsets 0. Start logits (ln 3, 0, 0): at t = 2 the left window is (ln 3, 0, 0) -> probabilities
    # (3, 1, 1) / 5 on distances (2, 1, 0) -> 7/5; at t = 0 it is (0, 0, ln 3) (padding is a logit 0) -> 3/5.
    # End logits (0, 0, ln 3): at t = 0 the right window is (0, 0, ln 3) on distances (0, 1, 2) -> 7/5; at t = 2
    # it is (ln 3, 0, 0) with two padded steps -> 3/5.
    start = torch.tensor([[[math.log(3.0), 0.0, 0.0]]])
    end = torch.tensor([[[0.0, 0.0, math.log(3.0)]]])
    left, right = boundary_windows(start, 2, start=True), boundary_windows(end, 2, start=False)
    out = decode_trident(torch.zeros(1, 3, 2, 3), left, right)[0, :, 0]  # [T, 2]
    torch.testing.assert_close(out[2, 0], torch.tensor(7 / 5))
    torch.testing.assert_close(out[0, 0], torch.tensor(3 / 5))
    torch.testing.assert_close(out[0, 1], torch.tensor(7 / 5))
    torch.testing.assert_close(out[2, 1], torch.tensor(3 / 5))
    # the centre offsets add to every class's logits: a large offset on bin j puts the distance at n - j / j
    offsets = torch.zeros(1, 3, 2, 3)
    offsets[0, :, 0, 0] = 50.0  # left bin 0: distance 2
    offsets[0, :, 1, 1] = 50.0  # right bin 1: distance 1
    out = decode_trident(offsets, left, right)[0, :, 0]
    torch.testing.assert_close(out, torch.tensor([[2.0, 1.0]] * 3), atol=1e-12, rtol=0)


def test_config_keys_and_losses():
    head = _head()
    assert isinstance(head.iou_loss, GIOULoss) and head.reg_head.out_channels == 2 * (NUM_BINS + 1)
    assert head.cls_start_head.out_channels == head.cls_end_head.out_channels == 3
    assert head.cls_head.bias[0].item() == pytest.approx(-math.log(99))
    with pytest.raises(ConfigError, match="iou_rate"):
        _head(loss=dict(cls_loss=dict(type="FocalLoss"), reg_loss=dict(type="DIOULoss")))
    wide = _head(kernel_size=5, boundary_kernel_size=1)
    assert wide.cls_convs[0].conv.kernel_size == (5,) and wide.cls_head.kernel_size == (5,)
    assert wide.reg_head.kernel_size == (5,) and wide.cls_start_convs[1].conv.kernel_size == (1,)
    assert wide.cls_head.bias[0].item() == pytest.approx(-math.log(99))


def _points(head, feats):
    return torch.cat(head.prior_generator(feats))


def _logit(seq, c, i):
    """Boundary logit of class ``c`` at step ``i`` of a level ``[C, T]``; 0 outside (upstream pads with 0)."""
    return seq[c, i] if 0 <= i < seq.shape[-1] else torch.zeros((), dtype=torch.float64)


def _reference_losses(head, feats, masks, gts, labels, normalizer, cls_normalizer):
    """Loops over samples, points and classes; float64; targets as hand-checked below."""
    cls_pred, reg_pred = head.forward_levels(feats, masks)
    starts, ends = head.boundary_levels(feats, masks)
    points = _points(head, feats).double()
    cls_terms, reg_terms = [], []
    n = head.num_bins
    for b in range(2):
        offsets = torch.cat([r[b] for r in reg_pred], -1).double().t()  # [P, 2 (n + 1)]
        logits = torch.cat([c[b] for c in cls_pred], -1).double().t()
        valid = torch.cat([m[b] for m in masks])
        s_lv = [s[b].double() for s in starts]
        e_lv = [e[b].double() for e in ends]
        gt_cls, gt_reg = assign_points(points.float(), gts[b], labels[b], num_classes=3)
        level_of = [0] * 16 + [1] * 8
        index_in_level = list(range(16)) + list(range(8))
        for p in range(points.shape[0]):
            if not valid[p]:
                continue
            lv, t = level_of[p], index_in_level[p]
            for c in range(3):
                focal = FocalLoss()(logits[p, c : c + 1].float(), gt_cls[p, c : c + 1], reduction="sum").double()
                if gt_cls[p, c] == 0:
                    cls_terms.append(focal)
                    continue
                lw = torch.softmax(torch.stack(
                    [_logit(s_lv[lv], c, t - n + j) + offsets[p, j] for j in range(n + 1)]), 0)
                rw = torch.softmax(torch.stack(
                    [_logit(e_lv[lv], c, t + j) + offsets[p, n + 1 + j] for j in range(n + 1)]), 0)
                dl = sum(lw[j] * (n - j) for j in range(n + 1))
                dr = sum(rw[j] * j for j in range(n + 1))
                pos, stride = points[p, 0], points[p, 3]
                pred = torch.stack([pos - dl * stride, pos + dr * stride])[None]
                tgt = torch.stack([pos - gt_reg[p, 0] * stride, pos + gt_reg[p, 1] * stride])[None].double()
                giou = 1 - GIOULoss()(pred, tgt)[0]
                cls_terms.append(focal * giou**0.2)
                reg_terms.append(DIOULoss()(pred, tgt)[0])
    return torch.stack(cls_terms).sum() / cls_normalizer, torch.stack(reg_terms).sum() / normalizer, len(reg_terms)


def test_losses_follow_the_definition():
    """Error model: float32 against float64 for sums of ~100 terms of order 1: 100 * 2^-24 relative, so
    rtol 1e-5 bounds it with margin; the targets are exact."""
    head = _head()
    feats, masks, gts, labels = _inputs()
    losses = head.forward_train(feats, masks, gts, labels)
    # hand-worked targets of sample 0, level 0 (stride 1, range [0, 4], radius 1.5): point 3 lies strictly
    # inside the centre regions of [1, 4] (class 2) and [2, 5] (class 0), both of length 3 -> two pairs
    gt_cls, _ = assign_points(_points(head, feats), gts[0], labels[0], num_classes=3)
    assert gt_cls[3].tolist() == [1.0, 0.0, 1.0] and gt_cls[2].tolist() == [0.0, 0.0, 1.0]
    valid = torch.cat(masks, dim=1)
    num_pos = int(((torch.stack([assign_points(_points(head, feats), g, l, num_classes=3)[0] for g, l in
                                  zip(gts, labels)]).sum(-1) > 0) & valid).sum())
    normalizer = 0.9 * 100 + 0.1 * num_pos
    assert head.loss_normalizer.item() == pytest.approx(normalizer)
    ref_cls, ref_reg, pairs = _reference_losses(head, feats, masks, gts, labels, normalizer, normalizer)
    assert pairs > num_pos  # some points regress one segment per class
    torch.testing.assert_close(losses["cls_loss"].double(), ref_cls, rtol=1e-5, atol=0)
    torch.testing.assert_close(losses["reg_loss"].double(), ref_reg, rtol=1e-5, atol=0)


def test_eval_mode_divides_the_classification_loss_by_the_running_normaliser():
    # upstream's quirk: in eval mode cls_loss / loss_normalizer (the buffer), reg_loss / the batch's count
    head = _head().eval()
    head.loss_normalizer.fill_(37.0)
    feats, masks, gts, labels = _inputs()
    losses = head.forward_train(feats, masks, gts, labels)
    assert head.loss_normalizer.item() == 37.0
    points = _points(head, feats)
    cls_t = torch.stack([assign_points(points, g, l, num_classes=3)[0] for g, l in zip(gts, labels)])
    num_pos = int(((cls_t.sum(-1) > 0) & torch.cat(masks, 1)).sum())
    ref_cls, ref_reg, _ = _reference_losses(head, feats, masks, gts, labels, num_pos, 37.0)
    torch.testing.assert_close(losses["cls_loss"].double(), ref_cls, rtol=1e-5, atol=0)
    torch.testing.assert_close(losses["reg_loss"].double(), ref_reg, rtol=1e-5, atol=0)


def test_gradients():
    head = _head()
    feats, masks, gts, labels = _inputs()
    # the boundary branch sees detached features: no gradient to the pyramid from it
    starts, ends = head.boundary_levels(feats, masks)
    grads = torch.autograd.grad(sum(s.sum() for s in starts + ends), feats, allow_unused=True)
    assert all(g is None for g in grads)
    # the IoU weight is not detached: the classification loss alone reaches the offset and boundary heads
    cls_loss = head.forward_train(feats, masks, gts, labels)["cls_loss"]
    grads = torch.autograd.grad(cls_loss, [head.reg_head.weight, head.cls_start_head.weight], allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    # the whole loss reaches every parameter
    head.zero_grad()
    sum(head.forward_train(feats, masks, gts, labels).values()).backward()
    for name, param in head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_no_positive_gives_zero_regression_loss():
    head = _head()
    feats, masks, _, _ = _inputs()
    empty = [torch.zeros(0, 2), torch.zeros(0, 2)]
    losses = head.forward_train(feats, masks, empty, [torch.zeros(0, dtype=torch.long)] * 2)
    assert losses["reg_loss"].item() == 0.0 and losses["cls_loss"].item() > 0


def test_forward_test_gives_class_specific_segments_and_masked_scores():
    head = _head().eval()
    feats, masks, _, _ = _inputs()
    with torch.no_grad():
        proposals, scores = head.forward_test(feats, masks)
        cls_pred, reg_pred = head.forward_levels(feats, masks)
        starts, ends = head.boundary_levels(feats, masks)
        dist = head.decode_levels(reg_pred, starts, ends)  # [B, P, C, 2]
    points = _points(head, feats)
    assert proposals[0].shape == (24, 3, 2) and scores[1].shape == (24, 3)
    expected = torch.stack([points[:, None, 0] - dist[1, ..., 0] * points[:, None, 3],
                            points[:, None, 0] + dist[1, ..., 1] * points[:, None, 3]], -1)
    torch.testing.assert_close(proposals[1], expected, rtol=0, atol=0)
    valid = torch.cat(masks, 1)[1]
    assert torch.all(scores[1][~valid] == 0) and torch.all(scores[1][valid] > 0)
