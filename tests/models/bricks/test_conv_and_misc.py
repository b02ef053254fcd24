"""ConvModule masking, norms, Scale, drop path and the sinusoidal table."""
import math

import pytest
import torch
import torch.nn as nn

from opentad.models.bricks.conv import ConvModule, build_activation, build_norm_1d
from opentad.models.bricks.misc import AffineDropPath, ChannelLayerNorm, Scale, drop_path, sinusoid_encoding


def test_conv_module_padded_equals_unpadded_and_zeroes_padding():
    torch.manual_seed(0)
    conv = ConvModule(3, 4, kernel_size=3, padding=1, norm_cfg=dict(type="LN"), act_cfg=dict(type="relu"))
    x = torch.randn(1, 3, 5)
    padded = torch.cat([x, torch.zeros(1, 3, 3)], dim=-1)  # padded steps hold zeros, as the layers leave them
    mask = torch.tensor([[True] * 5 + [False] * 3])
    out, out_mask = conv(padded, mask)
    torch.testing.assert_close(out[..., :5], conv(x))
    assert (out[..., 5:] == 0).all() and torch.equal(out_mask, mask)
    assert sorted(conv.state_dict()) == ["conv.weight", "norm.bias", "norm.weight"]  # no conv bias with a norm


def test_conv_module_stride_resizes_mask_by_nearest():
    conv = ConvModule(2, 2, kernel_size=3, stride=2, padding=1)
    _, mask = conv(torch.randn(1, 2, 6), torch.tensor([[True, True, True, False, False, False]]))
    # output step i keeps input step 2i: steps 0, 2, 4 -> True, True, False
    assert mask.tolist() == [[True, True, False]]
    assert sorted(conv.state_dict()) == ["conv.bias", "conv.weight"]


def test_channel_layer_norm_equals_permuted_layer_norm():
    x = torch.randn(2, 6, 5)
    ln = ChannelLayerNorm(6, eps=1e-6)
    with torch.no_grad():
        ln.weight.uniform_()
        ln.bias.uniform_()
    ref = nn.LayerNorm(6, eps=1e-6)
    ref.load_state_dict(ln.state_dict())
    torch.testing.assert_close(ln(x), ref(x.transpose(1, 2)).transpose(1, 2))


def test_norm_and_activation_builders():
    assert isinstance(build_norm_1d(None, 4), nn.Identity)
    assert isinstance(build_norm_1d(dict(type="GN", num_groups=2), 4), nn.GroupNorm)
    assert build_norm_1d(dict(type="LN"), 4).eps == 1e-6  # upstream's LN eps in ConvModule / FPNIdentity
    assert isinstance(build_activation(dict(type="nn.GELU")), nn.GELU)
    with pytest.raises(ValueError, match="LN"):
        build_norm_1d(dict(type="XN"), 4)
    with pytest.raises(ValueError, match="relu"):
        build_activation(dict(type="swishy"))


def test_scale_and_affine_drop_path():
    scale = Scale(2.0)
    torch.testing.assert_close(scale(torch.ones(3)), torch.full((3,), 2.0))
    assert list(scale.state_dict()) == ["scale"]
    adp = AffineDropPath(4, drop_prob=0.5).eval()
    assert adp.scale.shape == (1, 4, 1)
    torch.testing.assert_close(adp(torch.ones(2, 4, 3)), torch.full((2, 4, 3), 1e-4))


def test_drop_path_keeps_or_drops_whole_samples():
    torch.manual_seed(0)
    x = torch.ones(400, 3, 2)
    y = drop_path(x, 0.25, training=True)
    per_sample = y.flatten(1)
    # each sample is all zeros or all 1 / 0.75
    assert ((per_sample == 0).all(1) | (per_sample == 1 / 0.75).all(1)).all()
    assert 0.6 < (per_sample[:, 0] > 0).float().mean() < 0.9
    assert torch.equal(drop_path(x, 0.25, training=False), x)


def test_sinusoid_encoding_hand_values():
    table = sinusoid_encoding(5, 4)  # [1, C=4, T=5]
    assert table.shape == (1, 4, 5)
    for p in range(5):
        # channels 0/1: angle p; channels 2/3: angle p / 10000^(2/4) = p / 100
        expected = [math.sin(p), math.cos(p), math.sin(p / 100), math.cos(p / 100)]
        torch.testing.assert_close(table[0, :, p], torch.tensor(expected))
