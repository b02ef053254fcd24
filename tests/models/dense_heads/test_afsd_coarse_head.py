"""AFSDCoarseHead: upstream's keys, priors, the regression scale and stride, hand-worked boundary regions."""
import torch

from opentad.registry import HEADS, build


def _head(**kw):
    cfg = dict(type="AFSDCoarseHead", in_channels=32, out_channels=32, frame_num=16, fpn_strides=[2, 4],
               num_classes=3, layer_num=2, feat_t=4)
    return build(dict(cfg, **kw), HEADS)


def test_keys_as_upstream():
    keys = {k: tuple(v.shape) for k, v in _head().state_dict().items()}
    expected = {"loc_head.conv1d.weight": (2, 32, 3), "loc_head.conv1d.bias": (2,),
                "conf_head.conv1d.weight": (3, 32, 3), "conf_head.conv1d.bias": (3,),
                "scales.0.scale": (1,), "scales.1.scale": (1,)}
    for tower in ("loc_tower", "conf_tower"):
        for i in range(2):
            expected[f"{tower}.{i}.0.conv1d.weight"] = (32, 32, 3)
            for name in ("0.conv1d.bias", "1.weight", "1.bias"):
                expected[f"{tower}.{i}.{name}"] = (32,)
    assert keys == expected


def test_priors_and_stride():
    head = _head()
    assert head.priors[0].tolist() == [[0.125, 0.0], [0.375, 0.0], [0.625, 0.0], [0.875, 0.0]]
    assert head.priors[1].tolist() == [[0.25, 1.0], [0.75, 1.0]]
    torch.nn.init.zeros_(head.loc_head.conv1d.weight)  # exp(0 * scale) = 1: distances are the strides
    out = head.forward_train([torch.randn(2, 32, 4), torch.randn(2, 32, 2)])
    assert out.loc.shape == (2, 6, 2) and out.conf.shape == (2, 6, 3) and out.priors.shape == (6, 2)
    assert out.loc[:, :4].eq(2).all() and out.loc[:, 4:].eq(4).all()
    assert [tuple(s.shape) for s in out.segments] == [(2, 4, 4), (2, 2, 4)]


def test_boundary_regions_hand_worked():
    """Cell 1 of 4 (centre 0.375), distances (2, 2) frames of 16.

    Level steps: distances 0.5; cell 1; length 1 -> inner = outer = 1: round(-0.5, 1.5, 0.5, 2.5)
    (half to even) = (-0, 2, 0, 2). Frames: start 6 - 2 = 4, end 8, length 5 -> inner 1.25, outer 1:
    round(3, 5.25, 6.75, 9) = (3, 5, 7, 9).
    """
    head = _head()
    loc = torch.zeros(1, 4, 2)
    loc[0, 1] = torch.tensor([2.0, 2.0])
    segments, frame_segments = head.generate_segments(loc, 0)
    assert segments[0, 1].tolist() == [0.0, 2.0, 0.0, 2.0]
    assert frame_segments[0, 1].tolist() == [3.0, 5.0, 7.0, 9.0]
    # distances (3, 6): steps (0.75, 1.5), length 2.25 -> (round(-0.75), round(1.25), round(1.5), round(3.5))
    # = (-1, 1, 2, 4); frames 3 to 12, length 12 - 3 + 1 = 10 -> inner 2.5: (2, round(5.5) = 6, 10, 13)
    loc[0, 1] = torch.tensor([3.0, 6.0])
    segments, frame_segments = head.generate_segments(loc, 0)
    assert segments[0, 1].tolist() == [-1.0, 1.0, 2.0, 4.0]
    assert frame_segments[0, 1].tolist() == [2.0, 6.0, 10.0, 13.0]
