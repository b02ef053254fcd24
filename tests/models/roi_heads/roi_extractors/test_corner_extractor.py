"""CornerExtractor on hand-worked columns: feature [b, c, t] = 100 b + 10 c + t shows which column was read."""
import pytest
import torch

from opentad.models.roi_heads.roi_extractors.corner_extractor import CornerExtractor
from opentad.registry import ROI_HEADS, build


def test_columns_by_hand():
    feats = (100 * torch.arange(2)[:, None, None] + 10 * torch.arange(2)[None, :, None]
             + torch.arange(8)[None, None, :]).float().requires_grad_()
    proposals = torch.tensor([[[4.0, 11.0], [-3.0, 40.0]], [[8.0, 9.0], [6.0, 6.0]]])
    extractor = build(dict(type="CornerExtractor", beta=8.0, base_stride=2, tscale=16), ROI_HEADS)
    out = extractor(feats, proposals)
    assert out.shape == (4, 2, 6)
    # [4, 11]: w = 8 / 8 = 1; start 3, 4, 5 -> /2 -> 1, 2, 2; end 10, 11, 12 -> 5, 5, 6
    # [-3, 40] -> clamped [0, 15]: w = 2; start -2, 0, 2 -> 0, 0, 1; end 13, 15, 17 -> 6, 7, 7 (clamped to T-1)
    # [8, 9]: w = 0.25; start 7.75, 8, 8.25 -> 3, 4, 4; end 8.75, 9, 9.25 -> 4, 4, 4
    # [6, 6]: w = 0.125; start 5.875, 6, 6.125 -> 2, 3, 3; end the same
    columns = [[1, 2, 2, 5, 5, 6], [0, 0, 1, 6, 7, 7], [3, 4, 4, 4, 4, 4], [2, 3, 3, 2, 3, 3]]
    for row, cols in enumerate(columns):
        video = row // 2
        for channel in range(2):
            assert out[row, channel].tolist() == [100 * video + 10 * channel + t for t in cols]
    out.sum().backward()
    assert feats.grad.sum() == out.numel()


def test_no_state_and_shape_check():
    extractor = CornerExtractor()
    assert extractor.state_dict() == {}
    with pytest.raises(ValueError, match=r"\[B, N, 2\]"):
        extractor(torch.zeros(2, 3, 8), torch.zeros(1, 4, 2))
