"""VSGNFPN: the top-down recurrence written out by hand, masking, and upstream's state-dict keys."""
import pytest
import torch
import torch.nn.functional as F

from opentad.models.necks.vsgn_fpn import VSGNFPN


def conv_relu(seq, x):
    return torch.relu(F.conv1d(x, seq[0].weight, seq[0].bias, padding=1))


def up_relu(seq, x):
    return torch.relu(F.conv_transpose1d(x, seq[0].weight, seq[0].bias, stride=2, padding=1, output_padding=1))


def test_top_down_recurrence_and_masks():
    torch.manual_seed(0)
    neck = VSGNFPN(in_channels=4, out_channels=4, num_levels=3)
    feats = [torch.randn(2, 4, 8), torch.randn(2, 4, 4), torch.randn(2, 4, 2)]
    masks = [torch.ones(2, n, dtype=torch.bool) for n in (8, 4, 2)]
    masks[0][1, 6:] = False
    out, out_masks = neck(feats, masks)
    assert out_masks is masks
    top = conv_relu(neck.levels_transit, feats[2])
    mid = conv_relu(neck.levels_fuse[0], conv_relu(neck.levels_enc[0], feats[1]) + up_relu(neck.levels_dec[0], top))
    low = conv_relu(neck.levels_fuse[1], conv_relu(neck.levels_enc[1], feats[0]) + up_relu(neck.levels_dec[1], mid))
    assert torch.allclose(out[2], top, rtol=0, atol=0)
    assert torch.allclose(out[1], mid, rtol=0, atol=0)
    assert torch.equal(out[0], low * masks[0][:, None])
    assert out[0][1, :, 6:].abs().sum() == 0


def test_upstream_state_dict_keys():
    neck = VSGNFPN(in_channels=4, out_channels=4, num_levels=3)
    expected = {"levels_transit.0.weight": (4, 4, 3), "levels_transit.0.bias": (4,)}
    for i in range(2):
        for name in ("levels_enc", "levels_fuse", "levels_dec"):
            expected[f"{name}.{i}.0.weight"] = (4, 4, 3)  # ConvTranspose1d keeps [in, out, k]: the same here
            expected[f"{name}.{i}.0.bias"] = (4,)
    assert {k: tuple(v.shape) for k, v in neck.state_dict().items()} == expected
    assert isinstance(neck.levels_dec[0][0], torch.nn.ConvTranspose1d)


def test_rejects_another_number_of_levels():
    neck = VSGNFPN(in_channels=4, out_channels=4, num_levels=3)
    with pytest.raises(ValueError, match="3 levels"):
        neck([torch.randn(1, 4, 4)] * 2, [torch.ones(1, 4, dtype=torch.bool)] * 2)
