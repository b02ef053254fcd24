"""boundary_choose: steps above half the maximum, or local peaks (hand-worked)."""
import torch

from opentad.models.utils.post_processing import boundary_choose


def test_peaks_and_high_steps():
    score = torch.tensor([[0.1, 0.3, 0.2, 0.05, 0.6], [0.9, 0.5, 0.46, 0.47, 0.1]])
    # row 0: max 0.6 -> high only 0.6 (0.3 is not above 0.3); peaks 0.3 and 0.6 (the border pads with -inf)
    # row 1: high 0.9, 0.5, 0.47 (> 0.45), 0.46; peaks 0.9 and 0.47
    assert boundary_choose(score).tolist() == [[False, True, False, False, True], [True, True, True, True, False]]


def test_plateau_counts_as_peak():
    assert boundary_choose(torch.tensor([[0.2, 0.2, 0.2, 0.0]])).tolist() == [[True, True, True, False]]
