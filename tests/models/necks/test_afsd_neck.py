"""AFSDNeck: upstream's keys, level masks, the frame-level feature, Glorot init, the e2e input conv."""
import math

import pytest
import torch

from opentad.registry import NECKS, build


def _neck(**kw):
    cfg = dict(type="AFSDNeck", in_channels=8, out_channels=32, frame_num=32, layer_num=3)
    return build(dict(cfg, **kw), NECKS)


def test_keys_as_upstream():
    keys = {k: tuple(v.shape) for k, v in _neck().state_dict().items()}
    expected = {"pyramids.0.0.conv1d.weight": (32, 8, 1), "pyramids.0.0.conv1d.bias": (32,)}
    for i in (1, 2):
        expected[f"pyramids.{i}.0.conv1d.weight"] = (32, 32, 3)
        expected[f"pyramids.{i}.0.conv1d.bias"] = (32,)
    for i in range(3):
        expected[f"pyramids.{i}.1.weight"] = expected[f"pyramids.{i}.1.bias"] = (32,)
    for conv, norm, k in ((0, 1, 3), (3, 4, 3), (6, 7, 1)):
        expected[f"deconv.{conv}.conv1d.weight"] = (32, 32, k)
        expected[f"deconv.{conv}.conv1d.bias"] = (32,)
        expected[f"deconv.{norm}.weight"] = expected[f"deconv.{norm}.bias"] = (32,)
    assert keys == expected
    e2e = _neck(e2e=True).state_dict()
    assert tuple(e2e["pyramids.0.0.conv3d.weight"].shape) == (32, 8, 1, 3, 3) and "pyramids.0.0.conv1d.weight" not in e2e


def test_glorot_init_bounds():
    neck = _neck()
    w = neck.pyramids[1][0].conv1d.weight  # fan_in = fan_out = 32 * 3
    limit = math.sqrt(3.0 / 96.0)
    assert w.abs().max() <= limit and w.abs().max() > 0.9 * limit
    assert neck.pyramids[1][0].conv1d.bias.abs().sum() == 0


def test_forward_masks_levels_and_frame_feature():
    torch.manual_seed(0)
    neck = _neck()
    x = torch.randn(2, 8, 16)
    masks = torch.ones(2, 16, dtype=torch.bool)
    masks[1, 11:] = False
    (pyramid, frame), level_masks = neck(x, masks)
    assert [tuple(p.shape) for p in pyramid] == [(2, 32, 16), (2, 32, 8), (2, 32, 4)]
    # a level step is valid when either of its two steps above is (max pooling by 2)
    assert level_masks[1][1].tolist() == [True] * 6 + [False] * 2
    assert level_masks[2][1].tolist() == [True] * 3 + [False]
    assert pyramid[0][1, :, 11:].abs().sum() == 0 and pyramid[1][1, :, 6:].abs().sum() == 0
    # the frame level: level 0 repeated to frame_num steps (nearest), then the three convolutions
    assert torch.equal(frame, neck.deconv(pyramid[0].repeat_interleave(2, dim=-1)))
    with pytest.raises(ValueError, match="divisible"):
        neck(torch.randn(1, 8, 10), torch.ones(1, 10, dtype=torch.bool))


def test_e2e_input_takes_backbone_maps():
    neck = _neck(e2e=True)
    (pyramid, frame), _ = neck(torch.randn(1, 8, 16, 3, 3), torch.ones(1, 16, dtype=torch.bool))
    assert pyramid[0].shape == (1, 32, 16) and frame.shape == (1, 32, 32)
