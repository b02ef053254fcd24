"""TemporalEvaluationHead: upstream's keys, hand-worked targets (integer truncation), loss, gradients.

Tolerances: the hand-computed loss uses the same float64 inputs; the difference is rounding of a few
hundred float64 operations, far below 1e-12 relative.
"""
import math

import pytest
import torch

from opentad.models.dense_heads import TemporalEvaluationHead
from opentad.registry import HEADS, build

LOSS = dict(pos_thresh=0.5, gt_type=["startness", "endness"])


def _head(**kwargs):
    cfg = dict(type="TemporalEvaluationHead", in_channels=8, num_classes=2, conv_cfg=dict(groups=4), loss=LOSS)
    cfg.update(kwargs)
    return build(cfg, HEADS)


def test_state_dict_keys_are_upstreams():
    """Upstream: ``tem`` is a ModuleList of per-kind Sequentials, or one Sequential when shared."""
    keys = {"tem.{i}.0.conv.weight": (8, 2, 3), "tem.{i}.0.conv.bias": (8,),
            "tem.{i}.1.conv.weight": (1, 8, 1), "tem.{i}.1.conv.bias": (1,)}
    expected = {k.format(i=i): v for i in range(2) for k, v in keys.items()}
    assert {k: tuple(v.shape) for k, v in _head().state_dict().items()} == expected
    shared = {"tem.0.conv.weight": (8, 2, 3), "tem.0.conv.bias": (8,),
              "tem.1.conv.weight": (2, 8, 1), "tem.1.conv.bias": (2,)}
    assert {k: tuple(v.shape) for k, v in _head(shared=True).state_dict().items()} == shared


def test_targets_are_one_only_where_the_step_lies_inside_the_boundary_window():
    """gt [2.3, 5.0], T 8: start window [0.8, 3.8] covers steps 1, 2 wholly (step 3 by 0.8: 0, as upstream);
    end window [3.5, 6.5] covers steps 4, 5 (steps 3 and 6 by half: 0); the action covers steps 3, 4."""
    head = _head(num_classes=3, loss=dict(pos_thresh=0.5, gt_type=["endness", "actionness", "startness"]))
    end, action, start = head.prepare_targets([torch.tensor([[2.3, 5.0]])], tscale=8)
    assert start.tolist() == [[0, 1, 1, 0, 0, 0, 0, 0]]
    assert end.tolist() == [[0, 0, 0, 0, 1, 1, 0, 0]]
    assert action.tolist() == [[0, 0, 0, 1, 1, 0, 0, 0]]


def _balanced_bce(prob, target):
    pos = [i for i, y in enumerate(target) if y > 0.5]
    neg = [i for i, y in enumerate(target) if y <= 0.5]
    total = len(pos) + len(neg)
    loss = sum(-0.5 * total / len(pos) * math.log(prob[i]) for i in pos)
    loss += sum(-0.5 * total / len(neg) * math.log(1 - prob[i]) for i in neg)
    return loss / total


def test_loss_is_the_sum_of_balanced_bce_over_the_kinds():
    torch.manual_seed(0)
    head = _head().double()
    x = torch.randn(1, 8, 8, dtype=torch.float64)
    gt = [torch.tensor([[2.3, 5.0]], dtype=torch.float64)]
    losses, proposals = head.forward_train(x, torch.ones(1, 8, dtype=torch.bool), gt_segments=gt)
    assert proposals is None
    logits = head.forward_test(x, None)
    # channel i is branch i's output (the kind gt_type[i]): the maps are not reordered
    assert torch.equal(logits[:, 0:1], head.tem[0](x)) and torch.equal(logits[:, 1:2], head.tem[1](x))
    prob = logits.sigmoid()[0]
    expected = _balanced_bce(prob[0].tolist(), [0, 1, 1, 0, 0, 0, 0, 0])
    expected += _balanced_bce(prob[1].tolist(), [0, 0, 0, 0, 1, 1, 0, 0])
    assert math.isclose(losses["loss_tem"].item(), expected, rel_tol=1e-12)


def test_gradients_reach_every_parameter_and_the_input():
    head = _head()
    x = torch.randn(2, 8, 16, requires_grad=True)
    gt = [torch.tensor([[2.0, 9.0]]), torch.tensor([[1.0, 4.0], [8.0, 14.0]])]
    losses, _ = head.forward_train(x, torch.ones(2, 16, dtype=torch.bool), gt_segments=gt)
    losses["loss_tem"].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, param in head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("loss, match", [
    (dict(pos_thresh=0.5, gt_type=["startness"]), "num_classes"),
    (dict(pos_thresh=0.5, gt_type=["startness", "boundary"]), "kinds"),
    (dict(gt_type=["startness", "endness"]), "pos_thresh"),
])
def test_bad_loss_options_are_named(loss, match):
    with pytest.raises(ValueError, match=match):
        TemporalEvaluationHead(in_channels=8, num_classes=2, loss=loss)
