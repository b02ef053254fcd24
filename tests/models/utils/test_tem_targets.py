"""tem_targets and compute_ioa_torch on hand-worked cases, upstream's integer truncation included."""
import pytest
import torch

from opentad.models.utils.iou_tools import compute_ioa_torch
from opentad.models.utils.tem_targets import tem_targets


def test_compute_ioa_is_intersection_over_anchor_length():
    gt = torch.tensor([[1.0, 3.0]])
    anchors = torch.tensor([[0.0, 2.0], [2.5, 2.5], [1.0, 5.0], [4.0, 6.0]])
    # [0, 2]: 1 / 2; empty anchor: 0 / 1e-6; [1, 5]: 2 / 4; disjoint: 0
    assert torch.equal(compute_ioa_torch(gt, anchors), torch.tensor([[0.5], [0.0], [0.5], [0.0]]))


def test_compute_ioa_truncates_to_the_anchor_dtype():
    """Upstream casts to the anchors' dtype: int64 steps give 1 only where fully covered."""
    steps = torch.tensor([[0, 1], [1, 2], [2, 3]])
    assert torch.equal(compute_ioa_torch(torch.tensor([[0.5, 2.0]]), steps), torch.tensor([[0], [1], [0]]))


def test_tem_targets_hand_worked():
    """T = 6, one action [2.3, 4.0].

    start window [0.8, 3.8] covers step [1, 2] and [2, 3] entirely, [0, 1] by 0.2 and [3, 4] by 0.8;
    end window [2.5, 5.5] covers [3, 4] and [4, 5], half of [2, 3] and [5, 6];
    the action covers [3, 4] entirely and 0.7 of [2, 3]. Partial covers truncate to 0.
    """
    out = tem_targets([torch.tensor([[2.3, 4.0]])], tscale=6)
    assert out["startness"].tolist() == [[0, 1, 1, 0, 0, 0]]
    assert out["endness"].tolist() == [[0, 0, 0, 1, 1, 0]]
    assert out["actionness"].tolist() == [[0, 0, 0, 1, 0, 0]]
    assert out["startness"].dtype == torch.int64


def test_tem_targets_take_the_best_ground_truth_per_step_and_sample():
    gts = [torch.tensor([[0.0, 2.0], [5.0, 7.5]]), torch.tensor([[1.5, 2.5]])]
    out = tem_targets(gts, tscale=8)
    # sample 0: start windows [-1.5, 1.5] and [3.5, 6.5] -> steps 0 and 4, 5; end windows [0.5, 3.5] and [6, 9] -> 1, 2 and 6, 7
    assert out["startness"][0].tolist() == [1, 0, 0, 0, 1, 1, 0, 0]
    assert out["endness"][0].tolist() == [0, 1, 1, 0, 0, 0, 1, 1]
    assert out["actionness"][0].tolist() == [1, 1, 0, 0, 0, 1, 1, 0]
    # sample 1: start window [0, 3] -> steps 0, 1, 2; end window [1, 4] -> 1, 2, 3; action covers no whole step
    assert out["startness"][1].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert out["endness"][1].tolist() == [0, 1, 1, 1, 0, 0, 0, 0]
    assert out["actionness"][1].tolist() == [0] * 8


def test_tem_targets_reject_a_sample_without_ground_truth():
    with pytest.raises(ValueError, match="sample 1 has no ground-truth"):
        tem_targets([torch.tensor([[1.0, 2.0]]), torch.zeros(0, 2)], tscale=4)
