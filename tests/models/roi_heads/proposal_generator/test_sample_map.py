"""ProposalMapSampling: the map, the test / validation / training selections, upstream's random draws."""
import random

import numpy as np
import pytest
import torch

from opentad.models.roi_heads.proposal_generator.sample_map import ProposalMapSampling
from opentad.registry import ROI_HEADS, build


def _generator(**kwargs):
    return ProposalMapSampling(**{"tscale": 4, "dscale": 3, "sampling_ratio": 0.5, "strategy": "random", **kwargs})


def test_test_mode_gives_every_valid_proposal_duration_major():
    out = _generator()(bs=2, device="cpu")
    expected = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 2], [1, 3], [2, 4], [0, 3], [1, 4]]
    assert out.shape == (2, 9, 2)
    assert out[0].tolist() == expected and out[1].tolist() == expected


def test_sample_num_truncates_a_float32_product():
    assert _generator().sample_num == 4  # int(9 * 0.5)
    # 8256 * 0.06 = 495.36 -> 495; a count whose float32 product rounds below an integer would show the float32 step
    assert ProposalMapSampling(tscale=128, dscale=128, sampling_ratio=0.06).sample_num == 495
    assert ProposalMapSampling(tscale=128, dscale=64, sampling_ratio=0.1).sample_num == 617  # 6176 * 0.1


def test_grid_hand_worked():
    """T = D = 8, ratio 1/4: step 2, durations and starts 1, 3, 5, 7 with t + d < 8."""
    gen = ProposalMapSampling(tscale=8, dscale=8, sampling_ratio=0.25, strategy="grid")
    expected = [[1, 3], [3, 5], [5, 7], [1, 5], [3, 7], [1, 7]]  # d = 1: t = 1, 3, 5; d = 3: t = 1, 3; d = 5: t = 1
    assert gen(bs=1, device="cpu", training=True)[0].tolist() == expected  # train mode, strategy grid
    gen.eval()
    random_gen = ProposalMapSampling(tscale=8, dscale=8, sampling_ratio=0.25, strategy="random").eval()
    assert random_gen(bs=3, device="cpu", training=True).tolist() == [expected] * 3  # validation losses use the grid


def _upstream_random_draw(gen):
    """Upstream's route: indices of random.sample into the nonzero list, a mask, then the masked map."""
    valid = gen.valid_mask
    indices = random.sample(range(int(valid.sum())), gen.sample_num)
    picked = torch.nonzero(valid)[torch.tensor(indices).long()]
    mask = torch.zeros_like(valid)
    mask[picked[:, 0], picked[:, 1]] = True
    return gen.proposal_map[mask]


def test_random_draw_matches_upstreams_route_with_the_same_seed():
    gen = ProposalMapSampling(tscale=16, dscale=6, sampling_ratio=0.2)
    random.seed(3)
    ours = gen(bs=2, device="cpu", training=True)
    random.seed(3)
    reference = torch.stack([_upstream_random_draw(gen) for _ in range(2)])
    assert torch.equal(ours, reference)
    assert not torch.equal(ours[0], ours[1])  # each sample draws its own proposals


def test_block_draws_one_square_of_valid_entries():
    gen = ProposalMapSampling(tscale=32, dscale=16, sampling_ratio=0.1, strategy="block")
    width = int(np.sqrt(gen.sample_num))
    random.seed(0)
    d0 = random.randint(0, 16 - 2 * width)
    t0 = random.randint(0, 32 - 2 * width - d0)
    random.seed(0)
    out = gen(bs=1, device="cpu", training=True)[0]
    expected = [[t, t + d + 1] for d in range(d0, d0 + width) for t in range(t0, t0 + width) if t + d < 32]
    assert out.tolist() == expected


def test_no_state_and_bad_options():
    assert _generator().state_dict() == {}
    with pytest.raises(ValueError, match="strategy"):
        _generator(strategy="dense")
    with pytest.raises(ValueError, match="sampling_ratio"):
        _generator(sampling_ratio=0.0)
    with pytest.raises(ValueError, match="rounds to duration 8, outside dscale=8"):
        ProposalMapSampling(tscale=16, dscale=8, sampling_ratio=0.2)  # grid durations 1, 3.24, 5.47, 7.71 -> 8


def test_registered_under_upstreams_name():
    gen = build(dict(type="ProposalMapSampling", tscale=8, dscale=4), ROI_HEADS)
    assert (gen.sampling_ratio, gen.strategy) == (0.06, "random")
