"""AFSD's start / end maps and boundary BCE: hand-worked frames, half-to-even rounding, the 0.1 terms."""
import math

import torch

from opentad.models.losses import StartEndLoss
from opentad.models.losses.start_end_loss import start_end_targets, tanh_bce


def test_targets_hand_worked():
    # clip 20: (0.25, 0.5) -> frames (5, 10), d = max(0.5, 2) = 2: starts 4..6, ends 9..11
    maps = start_end_targets([torch.tensor([[0.25, 0.5]])], 20)
    assert maps.shape == (1, 2, 20)
    assert maps[0, 0].nonzero().flatten().tolist() == [4, 5, 6]
    assert maps[0, 1].nonzero().flatten().tolist() == [9, 10, 11]
    # (3.5, 15) frames, d = max(11.5 / 10, 2) = 2: starts round(2.5) = 2 .. round(4.5) = 4
    # (half to even, as NumPy), end d/2 = 1: 14..16; clamped at the clip's last frame 19 when beyond
    maps = start_end_targets([torch.tensor([[3.5 / 20, 15 / 20], [0.9, 1.0]])], 20)
    assert maps[0, 0].nonzero().flatten().tolist() == [2, 3, 4, 17, 18, 19]
    assert maps[0, 1].nonzero().flatten().tolist() == [14, 15, 16, 19]
    assert start_end_targets([torch.zeros(0, 2)], 8).abs().sum() == 0


def test_tanh_bce_and_weighting():
    start = torch.full((1, 4, 3), math.atanh(0.5))  # tanh -> 0.5 everywhere
    end = torch.zeros(1, 4, 2)  # tanh -> 0: BCE clamps log(0) at -100
    scores = torch.tensor([[[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    loss_start, loss_end = tanh_bce(start, end, scores)
    torch.testing.assert_close(loss_start, torch.tensor(math.log(2.0)), rtol=1e-6, atol=0)
    assert loss_end.item() == 0.0
    # frame level 8 steps, level 0 4 steps (scale 2: the maps subsampled every 2nd frame)
    loss = StartEndLoss(clip_len=8, scale_factor=2)
    frame = torch.full((1, 8, 2), math.atanh(0.5))
    level = torch.full((1, 4, 2), math.atanh(0.5))
    out = loss(frame, frame, level, level, level, level, [torch.tensor([[0.25, 0.75]])])
    # every prediction is 0.5, so each BCE is log 2 whatever the maps: 1 + 0.1 * (1 + 1) times log 2
    for name in ("loss_start", "loss_end"):
        torch.testing.assert_close(out[name], torch.tensor(1.2 * math.log(2.0)), rtol=1e-6, atol=0)
