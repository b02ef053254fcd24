"""TemporalMaxerBlock: max pooling of features and masks, worked by hand."""
import pytest
import torch

from opentad.models.bricks.temporal_maxer import TemporalMaxerBlock


def test_stride_two_pools_features_and_masks():
    # T = 6, 4 valid steps: output i pools inputs 2i - 1, 2i, 2i + 1 (-inf padding at both ends)
    x = torch.tensor([[[1.0, 5.0, 2.0, 0.5, 0.0, 0.0], [-1.0, -2.0, -3.0, -4.0, 0.0, 0.0]]])
    mask = torch.tensor([[True, True, True, True, False, False]])
    out, out_mask = TemporalMaxerBlock()(x, mask)
    # windows {0, 1}, {1, 2, 3}, {3, 4, 5}: the third holds valid step 3, so it stays valid (nearest
    # sampling of the mask, step 4, would drop it)
    assert out_mask.tolist() == [[True, True, True]]
    assert out.tolist() == [[[5.0, 5.0, 0.5], [-1.0, -2.0, 0.0]]]  # max(-4, 0, 0) = 0: padding holds zeros


def test_invalid_windows_are_zeroed_and_lengths_round_up():
    x = torch.arange(1.0, 8.0).view(1, 1, 7)
    mask = torch.tensor([[True, True, False, False, False, False, False]])
    out, out_mask = TemporalMaxerBlock()(x, mask)
    assert out_mask.tolist() == [[True, True, False, False]]  # ceil(7 / 2) = 4
    assert out.tolist() == [[[2.0, 4.0, 0.0, 0.0]]]


def test_stride_one_keeps_the_mask_and_has_no_parameters():
    block = TemporalMaxerBlock(kernel_size=3, stride=1, padding=1)
    x = torch.tensor([[[1.0, 3.0, 2.0]]])
    mask = torch.tensor([[True, True, False]])
    out, out_mask = block(x, mask)
    assert out_mask is mask and out.tolist() == [[[3.0, 3.0, 0.0]]]
    assert list(block.state_dict()) == [] and list(block.parameters()) == []
    with pytest.raises(ValueError, match="padding"):
        TemporalMaxerBlock(kernel_size=3, stride=2, padding=2)
