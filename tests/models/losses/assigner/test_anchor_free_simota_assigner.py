"""AnchorFreeSimOTAAssigner: hand-worked assignments, costs and weights, and upstream's per-segment cost formulation.

Float tolerances: the hand values are exact rationals (plus ln 2 / 4) evaluated in float64; the assigner
evaluates each cost with at most 12 float32 operations on values below 16, so each rounding errs by at most
16 * 2^-24 and the cost by at most 12 * 16 * 2^-24 < 1.2e-5 (``ATOL``).
"""
import math
from fractions import Fraction

import pytest
import torch

from opentad.models.dense_heads.point_assigner import assign_points
from opentad.models.losses.assigner import AnchorFreeSimOTAAssigner
from opentad.models.losses.assigner.anchor_free_simota_assigner import offset_diou_cost
from opentad.models.losses.focal_loss import sigmoid_focal_loss
from opentad.registry import LOSSES, ConfigError, build

ATOL = 12 * 16 * 2.0**-24
INF = float("inf")


def _ctr_diou(pred, gt):
    """``1 - DIoU`` of distances from one point, in exact rationals (the definition, not the code)."""
    (lp, rp), (lg, rg) = [tuple(Fraction(v) for v in x) for x in (pred, gt)]
    inter = min(lp, lg) + min(rp, rg)
    union = lp + rp + lg + rg - inter
    enclosing = max(lp, lg) + max(rp, rg)
    centre = (rp - lp) / 2 - (rg - lg) / 2
    return 1 - inter / union + (centre / enclosing) ** 2


def test_offset_diou_cost_hand_values():
    pred = torch.tensor([[0.0, 6.0], [0.0, 6.0], [0.0, 6.0], [2.0, 2.5]])
    gt = torch.tensor([[2.0, 1.0], [0.0, 6.0], [3.0, 9.0], [3.0, 3.0]])
    # (0, 6) vs (2, 1): inter 0 + 1, union 6 + 3 - 1 = 8, enclosing 2 + 6, centre 3 - (-0.5) = 3.5
    expected = [1 - Fraction(1, 8) + Fraction(7, 16) ** 2, 0, Fraction(1, 2), Fraction(1, 4) + Fraction(1, 24) ** 2]
    assert [_ctr_diou(p, g) for p, g in zip(pred.tolist(), gt.tolist())] == expected
    torch.testing.assert_close(offset_diou_cost(pred, gt).double(), torch.tensor([float(e) for e in expected],
                               dtype=torch.float64), rtol=0, atol=ATOL)


# one level, stride 1, positions 0..9, any regression distance; one segment [2, 8] of class 0 (2 classes)
LINE = torch.tensor([[float(p), 0.0, 100.0, 1.0] for p in range(10)])
SEGMENT, LABEL = torch.tensor([[2.0, 8.0]]), torch.tensor([0])
PRED = torch.tensor([2.0, 2.5]).expand(10, 2)  # every point predicts [p - 2, p + 2.5]
LOGITS = torch.zeros(10, 2)


def test_cost_hand_worked():
    # focal cost of logits 0 against one-hot class 0 of 2 classes: p = 1/2, CE = ln 2, (1 - p_t)^2 = 1/4,
    # alpha_t = 1/4 (positive) and 3/4 (negative): (1/4 + 3/4) / 4 * ln 2 = ln 2 / 4
    cls_cost = math.log(2) / 4
    assigner = AnchorFreeSimOTAAssigner(iou_weight=3.0, cls_weight=1.0)
    cost = assigner.cost_matrix(LOGITS, LINE, PRED, SEGMENT, LABEL)[:, 0]
    assert cost.shape == (10,)
    assert cost[[0, 1, 9]].tolist() == [INF, INF, INF]  # outside the segment (a boundary itself is inside)
    expected = [cls_cost + 3 * float(_ctr_diou((2, 2.5), (p - 2, 8 - p))) for p in range(2, 9)]
    torch.testing.assert_close(cost[2:9].double(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=3 * ATOL)
    # by hand, the iou costs of p = 2..8: .806, .5625, .2656, .2517, .4216, .69, .911 -> order 5, 4, 6, 3, 7, 2, 8
    assert torch.argsort(cost[2:9]).add(2).tolist() == [5, 4, 6, 3, 7, 2, 8]


def test_assignment_weights_and_padding_hand_worked():
    valid = torch.ones(10, dtype=torch.bool)
    valid[9] = False
    assigner = AnchorFreeSimOTAAssigner(center_radius=1.5, iou_weight=3.0, keep_percent=0.5, confuse_weight=0.1)
    matching, min_inds, weights = assigner.assign(LOGITS, LINE, PRED, SEGMENT, LABEL, valid)
    # centre region (5 - 1.5, 5 + 1.5) open: points 4, 5, 6
    assert matching[:, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0]
    assert min_inds.tolist() == [0] * 10
    # 7 points inside [2, 8]; floor(0.5 * 7) = 3 of least cost (5, 4, 6) keep 1, the other inside points 0.1,
    # points inside no segment 1, padding 0
    expected = [1, 1, 0.1, 0.1, 1, 1, 1, 0.1, 0.1, 0]
    torch.testing.assert_close(weights, torch.tensor(expected))


def test_upstream_config_values_weigh_every_valid_point_one():
    # keep_percent=1 keeps every inside point, so confuse_weight=0 never shows (configs/_base_/models/temporalmaxer.py)
    valid = torch.ones(10, dtype=torch.bool)
    valid[0] = False
    assigner = AnchorFreeSimOTAAssigner(iou_weight=2, cls_weight=1.0, center_radius=1.5, keep_percent=1.0,
                                        confuse_weight=0.0)
    _, _, weights = assigner.assign(LOGITS, LINE, PRED, SEGMENT, LABEL, valid)
    assert weights.tolist() == [0.0] + [1.0] * 9


# two levels: stride 1 at 0..7 (range [0, 4]), stride 2 at 0, 2, 4, 6 (range [4, 100]);
# A = [1, 4] class 2, B = [0, 12] class 0, C = [3, 9] class 1 (tests/models/dense_heads/test_point_assigner.py)
POINTS = torch.tensor(
    [[float(p), 0.0, 4.0, 1.0] for p in range(8)] + [[float(p), 4.0, 100.0, 2.0] for p in (0, 2, 4, 6)]
)
SEGMENTS = torch.tensor([[1.0, 4.0], [0.0, 12.0], [3.0, 9.0]])
LABELS = torch.tensor([2, 0, 1])


def test_matching_is_centre_sampling_but_regression_follows_the_least_cost():
    logits = torch.zeros(12, 3)  # the same focal cost for every segment: the iou cost decides
    offsets = torch.ones(12, 2)
    offsets[3] = torch.tensor([0.0, 6.0])  # point 3 predicts C = [3, 9] exactly
    assigner = AnchorFreeSimOTAAssigner(center_radius=1.5, iou_weight=2.0, keep_percent=1.0, confuse_weight=0.0)
    matching, min_inds, _ = assigner.assign(logits, POINTS, offsets, SEGMENTS, LABELS, torch.ones(12, dtype=torch.bool))
    # the centre-sampling candidates of ActionFormer's rule (hand-worked in test_point_assigner.py)
    expected = torch.zeros(12, 3)
    for row, seg in [(2, 0), (3, 0), (5, 2), (6, 2), (7, 2), (10, 2), (11, 1)]:
        expected[row, seg] = 1
    assert torch.equal(matching, expected)
    # point 3 is matched to A (costs: A 1 - 1/8 + (7/16)^2, B 1/2, C 0) but regresses to C
    assert min_inds[3].item() == 2
    # point 0 lies inside B only (0 is B's start): B is its only finite cost
    assert min_inds[0].item() == 1
    cls_targets, reg_targets = assign_points(POINTS, SEGMENTS, LABELS, num_classes=3)
    assert reg_targets[3].tolist() == [2.0, 1.0]  # ActionFormer's rule regresses point 3 to A


def test_no_ground_truth():
    valid = torch.ones(12, dtype=torch.bool)
    valid[-2:] = False
    matching, min_inds, weights = AnchorFreeSimOTAAssigner().assign(
        torch.zeros(12, 3), POINTS, torch.ones(12, 2), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), valid
    )
    assert matching.shape == (12, 0) and min_inds.tolist() == [0] * 12
    assert weights.tolist() == [1.0] * 10 + [0.0] * 2


def _upstream_cost(scores, points, offsets, segments, labels, cls_weight, iou_weight):
    """The cost as upstream forms it: one focal row per segment ([P, N, C] repeated operands), then the iou cost."""
    num_pts, num_gt = len(points), len(segments)
    one_hot = torch.nn.functional.one_hot(labels, scores.shape[-1]).float()[None].repeat(num_pts, 1, 1)
    cls_cost = sigmoid_focal_loss(scores[:, None].repeat(1, num_gt, 1), one_hot).sum(-1)
    gt_off = torch.stack([points[:, 0, None] - segments[:, 0], segments[:, 1] - points[:, 0, None]], -1)
    gt_off = gt_off / points[:, 3, None, None]
    outside = (gt_off < 0).sum(-1) > 0
    gt_off[outside] = 0.0
    pred = offsets[:, None].expand(num_pts, num_gt, 2).clone()
    pred[outside] = 0.0
    iou_cost = offset_diou_cost(pred.reshape(-1, 2), gt_off.reshape(-1, 2)).reshape(num_pts, num_gt)
    iou_cost[outside] = INF
    return cls_cost * cls_weight + iou_cost * iou_weight


@pytest.mark.parametrize("num_classes,num_gt", [(20, 30), (65, 120)])
def test_per_class_focal_cost_equals_upstreams_per_segment_cost_exactly(num_classes, num_gt):
    """Computing the focal cost once per distinct class runs the same element-wise operations and sums."""
    g = torch.Generator().manual_seed(num_gt)
    points = torch.cat([torch.tensor([[float(p * s), 0.0, 1e4, float(s)] for p in range(256 // s)]) for s in (1, 2, 4)])
    scores = torch.randn(len(points), num_classes, generator=g) * 3
    offsets = torch.rand(len(points), 2, generator=g) * 10
    start = torch.rand(num_gt, generator=g) * 200
    segments = torch.stack([start, start + 1 + torch.rand(num_gt, generator=g) * 50], -1)
    labels = torch.randint(0, num_classes, (num_gt,), generator=g)
    assigner = AnchorFreeSimOTAAssigner(iou_weight=2.0, cls_weight=1.0)
    ours = assigner.cost_matrix(scores, points, offsets, segments, labels)
    assert torch.equal(ours, _upstream_cost(scores, points, offsets, segments, labels, 1.0, 2.0))


def test_built_from_the_losses_registry_with_upstream_keys():
    cfg = dict(type="AnchorFreeSimOTAAssigner", iou_weight=2, cls_weight=1.0, center_radius=1.5, keep_percent=1.0,
               confuse_weight=0.0)
    assigner = build(cfg, LOSSES)
    assert (assigner.iou_weight, assigner.center_radius, assigner.keep_percent) == (2, 1.5, 1.0)
    with pytest.raises(ConfigError, match="center_sample_radius"):
        build(dict(cfg, center_sample_radius=1.5), LOSSES)
