"""DenseProposalMap: the hand-written map of a 3-step window, and no state-dict keys."""
import pytest
import torch

from opentad.registry import ROI_HEADS, build


def test_map_of_three_steps():
    generator = build(dict(type="DenseProposalMap", tscale=3, dscale=3), ROI_HEADS)
    proposal_map, valid = generator()
    assert proposal_map.tolist() == [
        [[0, 1], [1, 2], [2, 3]],
        [[0, 2], [1, 3], [0, 0]],
        [[0, 3], [0, 0], [0, 0]],
    ]
    assert valid.tolist() == [[True, True, True], [True, True, False], [True, False, False]]
    assert proposal_map.dtype == torch.float32 and generator.state_dict() == {}


def test_fewer_durations_than_steps():
    proposal_map, valid = build(dict(type="DenseProposalMap", tscale=4, dscale=2), ROI_HEADS)()
    assert proposal_map.shape == (2, 4, 2) and valid.sum().item() == 4 + 3


def test_empty_map_is_refused():
    with pytest.raises(ValueError, match="tscale"):
        build(dict(type="DenseProposalMap", tscale=0, dscale=2), ROI_HEADS)
