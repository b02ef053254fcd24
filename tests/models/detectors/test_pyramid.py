"""PyramidDetector, the frame of the five one-stage detectors: required parts and the padding rules.

Padding lengths are hand-worked from the two rules (``max_seq_len`` when the input is not
longer, else the next multiple of the largest level divisor): ActionFormer's divisor is
``stride * 2 * (window // 2)``, TriDet's ``stride * window`` (``stride`` for window 1).
"""
import pytest
import torch
import torch.nn as nn

from opentad.models.detectors import ActionFormer, DyFADet, TemporalMaxer, TriDet, VideoMambaSuite
from opentad.registry import DETECTORS, ConfigError, build

NAMES = ["ActionFormer", "TriDet", "TemporalMaxer", "DyFADet", "VideoMambaSuite"]


class _Part(nn.Module):
    """A stand-in projection / head carrying only what the padding rule reads."""

    def __init__(self, **attributes):
        super().__init__()
        for name, value in attributes.items():
            setattr(self, name, value)


def _detector(cls, windows, strides, max_seq_len):
    projection = _Part(max_seq_len=max_seq_len, mha_win_size=windows, sgp_win_size=windows)
    head = _Part(prior_generator=_Part(strides=strides))
    return cls(projection=projection, rpn_head=head)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("missing", ["projection", "rpn_head"])
def test_missing_part_is_a_config_error_naming_detector_and_part(name, missing):
    cfg = dict(type=name, projection=dict(type="Nope"), rpn_head=dict(type="Nope"))
    del cfg[missing]
    with pytest.raises(ConfigError, match=rf"{name} is missing required config key\(s\) \['{missing}'\]"):
        build(cfg, DETECTORS)


@pytest.mark.parametrize("cls", [TemporalMaxer, DyFADet, VideoMambaSuite])
def test_no_padding_without_window_attr(cls):
    model = _detector(cls, [3, 3], [1, 2], 8)
    x, masks = torch.randn(1, 2, 5), torch.ones(1, 5, dtype=torch.bool)
    out, out_masks = model.prepare_feat(x, masks)
    assert out is x and out_masks is masks
    assert not hasattr(model, "max_div_factor")


@pytest.mark.parametrize(
    "cls, factor, lengths",
    [
        # windows [3, 3], strides [1, 2]: ActionFormer 1*2*1=2, 2*2*1=4 -> 4; TriDet 1*3, 2*3 -> 6
        (ActionFormer, 4, {5: 8, 8: 8, 9: 12, 12: 12, 13: 16}),
        (TriDet, 6, {5: 8, 8: 8, 9: 12, 12: 12, 13: 18}),
    ],
)
def test_padding_lengths(cls, factor, lengths):
    model = _detector(cls, [3, 3], [1, 2], 8).eval()
    assert model.max_div_factor == factor and model.max_seq_len == 8
    for length, target in lengths.items():
        x = torch.randn(2, 3, length)
        masks = torch.ones(2, length, dtype=torch.bool)
        masks[1, length - 2 :] = False
        out, out_masks = model.prepare_feat(x, masks)
        assert out.shape == (2, 3, target) and out_masks.shape == (2, target)
        assert torch.equal(out[..., :length], x) and not out[..., length:].any()
        assert torch.equal(out_masks[:, :length], masks) and not out_masks[:, length:].any()


def test_tridet_pads_only_outside_training():
    model = _detector(TriDet, [3, 3], [1, 2], 8).train()
    x, masks = torch.randn(1, 2, 5), torch.ones(1, 5, dtype=torch.bool)
    assert model.prepare_feat(x, masks)[0] is x
    assert model.eval().prepare_feat(x, masks)[0].shape[-1] == 8


def test_windows_and_strides_must_agree_in_number():
    with pytest.raises(ValueError, match=r"2 prior_generator strides but 3 projection.sgp_win_size"):
        _detector(TriDet, [3, 3, 3], [1, 2], 8)
    with pytest.raises(ValueError, match="divisible"):
        _detector(ActionFormer, [5, 5], [1, 2], 12)  # 2 * 2 * (5 // 2) = 8 does not divide 12
