"""AFSD's MultiSegmentLoss: prior matching, IoU arithmetic and the five losses on hand-worked cases.

All inputs are dyadic, so targets are exact; the losses are float32 evaluations of a few dozen
operations (relative rounding 2^-24 each), compared with float64 values at rtol 1e-5.
"""
import math

import torch

from opentad.models.losses import MultiSegmentLoss
from opentad.models.losses.multi_segment_loss import distance_iou, match_priors

CLIP = 16
PRIORS = torch.tensor([[0.125, 0.0], [0.375, 0.0], [0.625, 0.0], [0.875, 0.0]])
TRUTHS = torch.tensor([[0.25, 0.75], [0.3125, 0.5]])  # frames [4, 12] and [5, 8]
LABELS = torch.tensor([2, 1])


def test_distance_iou_and_giou():
    pred = torch.tensor([[2.0, 2.0], [-1.0, 5.0], [1.0, 1.0]])
    target = torch.tensor([[6.0, 2.0], [2.0, 3.0], [1.0, 1.0]])
    # inter = min(l) + min(r); union = both lengths - inter; enclosing = max(l) + max(r)
    iou = distance_iou(pred, target)
    assert iou[0].item() == 0.5 and iou[2].item() == 1.0
    assert math.isclose(iou[1].item(), 2.0 / 7.0, rel_tol=1e-6)  # [1, 5] vs [-2, 3]: 2 / 7 (negative left)
    assert distance_iou(pred, target, generalized=True).tolist()[0] == 0.5  # enclosing 8 = union: no penalty
    disjoint = distance_iou(torch.tensor([[-3.0, 4.0]]), torch.tensor([[2.0, -1.0]]))  # [3, 4] vs [-2, -1]
    assert disjoint.item() < 0  # upstream's unclamped intersection (-4) over the union (12)
    assert math.isclose(disjoint.item(), -4.0 / 6.0, rel_tol=1e-6)


def test_match_priors_picks_the_shortest_containing_truth():
    loc_t, conf_t = match_priors(PRIORS, TRUTHS, LABELS, clip_len=CLIP, loc_bounded=False)
    assert conf_t.tolist() == [0, 1, 2, 0]  # 0.375 lies in both: the shorter [5, 8] wins
    assert loc_t[1].tolist() == [1.0, 2.0] and loc_t[2].tolist() == [6.0, 2.0]
    empty_loc, empty_conf = match_priors(PRIORS, torch.zeros(0, 2), torch.zeros(0, dtype=torch.long),
                                         clip_len=CLIP, loc_bounded=False)
    assert empty_conf.tolist() == [0, 0, 0, 0] and empty_loc.abs().sum() == 0


def test_match_priors_level_bounds():
    priors = torch.tensor([[0.5, 0.0], [0.5, 1.0]])
    # largest distance 20 frames: inside (0, 30] (level 0) and (15, 60] (level 1)
    _, conf = match_priors(priors, torch.tensor([[0.3, 0.7]]), torch.tensor([1]), clip_len=100, loc_bounded=True)
    assert conf.tolist() == [1, 1]
    # largest distance 5: level 1 needs more than 15
    _, conf = match_priors(priors, torch.tensor([[0.45, 0.55]]), torch.tensor([1]), clip_len=100, loc_bounded=True)
    assert conf.tolist() == [1, 0]


def _inputs():
    loc = torch.tensor([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [1.0, 1.0]])  # prior 1 exact, prior 2 IoU 0.5
    prop_loc = torch.tensor([[0.0, 0.0], [0.5, -0.5], [0.0, 0.0], [0.0, 0.0]])
    center = torch.ones(4, 1)
    zeros = torch.zeros(4, 3)  # uniform softmax over background + 2 classes
    batch = [torch.stack([t, t]).requires_grad_(True) for t in (loc, zeros, prop_loc, zeros, center)]
    return batch


def test_losses_hand_worked():
    loss_fn = MultiSegmentLoss(num_classes=3, clip_len=CLIP, overlap_thresh=0.6, loc_weight=2.0, loc_bounded=False)
    loc, conf, prop_loc, prop_conf, center = _inputs()
    gts = [TRUTHS, torch.zeros(0, 2)]  # the second video has no action
    labels = [LABELS, torch.zeros(0, dtype=torch.long)]
    losses = loss_fn(loc, conf, prop_loc, prop_conf, center, PRIORS, gts, labels)
    pt = 1.0 / 3.0 + 1e-6
    f = -((1 - pt) ** 2) * math.log(pt)  # focal term of one prior, before its class weight
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    # video 1: 2 positives (GIoU losses 0 and 0.5); refinement positive: prior 1 only (IoU 1 >= 0.6)
    # refined prior 1: (1, 2) + 0.5 * 3 * (0.5, -0.5) = (1.75, 1.25) vs (1, 2): IoU 2.25 / 3.75 = 0.6
    # refined prior 2: (2, 2) vs (6, 2): IoU 0.5; centerness logits 1
    bce = 0.6 * softplus(-1) + 0.4 * softplus(1) + 0.5 * softplus(-1) + 0.5 * softplus(1)
    expected = dict(
        loss_loc=(0.5 / 2 + 0) / 2 * 2.0,
        loss_cls=((2 * 0.25 + 2 * 0.75) * f / 2 + 4 * 0.25 * f) / 2,
        loss_iou=(bce / 2 + 0) / 2,
        loss_prop_loc=(1.0 / 1 + 0) / 2 * 2.0,  # L1 of (0.5, -0.5) against (0, 0)
        loss_prop_cls=((3 * 0.25 + 0.75) * f / 1 + 4 * 0.25 * f) / 2,
    )
    assert list(losses) == list(expected)
    for name, value in expected.items():
        torch.testing.assert_close(losses[name], torch.tensor(value), rtol=1e-5, atol=0, msg=name)
    smooth = MultiSegmentLoss(num_classes=3, clip_len=CLIP, overlap_thresh=0.6, loc_bounded=False, use_smooth_l1=True)
    value = smooth(loc, conf, prop_loc, prop_conf, center, PRIORS, gts, labels)["loss_prop_loc"]
    torch.testing.assert_close(value, torch.tensor((2 * 0.5 * 0.25) / 2), rtol=1e-6, atol=0)


def test_bounded_threshold_is_capped_by_the_best_iou():
    """With loc_bounded, overlap_thresh 0.6 becomes the video's best coarse IoU (0.5) when lower."""
    loss_fn = MultiSegmentLoss(num_classes=3, clip_len=CLIP, overlap_thresh=0.6, loc_bounded=True)
    loc = torch.tensor([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [1.0, 1.0]])
    _, conf_t, _, prop_conf_t = loss_fn.targets(loc, PRIORS, TRUTHS, LABELS)
    assert prop_conf_t.tolist() == [0, 1, 0, 0]  # best IoU 1: threshold 0.6
    loc[1] = torch.tensor([0.5, 1.0])  # IoU 0.5 with (1, 2), like prior 2
    _, _, _, prop_conf_t = loss_fn.targets(loc, PRIORS, TRUTHS, LABELS)
    assert prop_conf_t.tolist() == [0, 1, 2, 0]


def test_centerness_target_is_not_detached():
    """Upstream's centerness target (the refined IoU) keeps its graph: loss_iou reaches both regressions."""
    loss_fn = MultiSegmentLoss(num_classes=3, clip_len=CLIP, overlap_thresh=0.6, loc_bounded=False)
    loc, conf, prop_loc, prop_conf, center = _inputs()
    losses = loss_fn(loc, conf, prop_loc, prop_conf, center, PRIORS, [TRUTHS] * 2, [LABELS] * 2)
    g_loc, g_prop = torch.autograd.grad(losses["loss_iou"], (loc, prop_loc))
    assert g_loc[:, 1:3].abs().sum() > 0 and g_prop[:, 1:3].abs().sum() > 0
    assert g_loc[:, [0, 3]].abs().sum() == 0  # background priors get nothing
