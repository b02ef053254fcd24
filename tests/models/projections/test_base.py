"""PyramidProj / EmbedPyramidProj: the hook protocol, the order of the input steps, the position table, helpers.

Every comparison is exact unless said: the expected value is the same operations on the same data
(same seed for the random ones), or hand-worked values of a float64 table stored in float32.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.bricks.misc import sinusoid_encoding
from opentad.models.projections.actionformer_proj import ConvOptions
from opentad.models.projections.base import EmbedPyramidProj, PyramidProj, build_input_proj, per_level, zero_bias
from opentad.registry import ConfigError, config_keywords


class _Step(nn.Module):
    """Stride 1: ``x + tag`` on valid steps; stride 2: every other step, then ``+ tag``. ``probe`` is unused."""

    def __init__(self, stride: int, tag: float):
        super().__init__()
        self.stride, self.tag = stride, tag
        self.probe = nn.Linear(2, 2)  # a bias for the init switch to act on

    def forward(self, x, mask):
        x, mask = x[..., :: self.stride], mask[:, :: self.stride]
        return x + self.tag * mask[:, None].to(x.dtype), mask


class _Toy(PyramidProj):
    def __init__(self, **kwargs):
        self.calls = []  # read by make_block: set before the frame builds the blocks
        super().__init__(**kwargs)

    def make_block(self, index, width, stride):
        self.calls.append((index, width, stride))
        return _Step(stride, (index + 1) * (1 if stride == 1 else 10))


class _NoStem(_Toy):
    uses_stem = False
    zero_init_bias = False


def _pyramid(model, x, mask):
    feats, masks = model(x, mask)
    return [f.clone() for f in feats], [m.clone() for m in masks]


def test_blocks_are_built_in_order_and_form_the_pyramid():
    toy = _Toy(in_channels=3, out_channels=3, arch=(0, 2, 2)).eval()
    assert toy.calls == [(0, 3, 1), (1, 3, 1), (0, 3, 2), (1, 3, 2)]
    x, mask = torch.randn(1, 3, 8), torch.ones(1, 8, dtype=torch.bool)
    feats, masks = _pyramid(toy, x, mask)
    stem = x + 1 + 2
    assert len(feats) == 3 and torch.equal(feats[0], stem)
    assert torch.equal(feats[1], stem[..., ::2] + 10) and torch.equal(feats[2], stem[..., ::4] + 10 + 20)
    assert [m.shape[-1] for m in masks] == [8, 4, 2]

    no_stem = _NoStem(in_channels=3, out_channels=3, arch=(0, 2, 1)).eval()
    assert no_stem.calls == [(0, 3, 2)] and len(no_stem.stem) == 0
    assert torch.equal(_pyramid(no_stem, x, mask)[0][0], x)  # the pyramid starts at the embedding


def test_mask_input_zeroes_padded_steps_on_entry():
    x, mask = torch.randn(1, 3, 6), torch.tensor([[True] * 4 + [False] * 2])

    class Masked(_Toy):
        mask_input = True

    assert torch.equal(Masked(in_channels=3, out_channels=3, arch=(0, 0, 0))(x, mask)[0][0], x * mask[:, None])
    assert torch.equal(_Toy(in_channels=3, out_channels=3, arch=(0, 0, 0))(x, mask)[0][0], x)


@pytest.mark.parametrize("before", [True, False])
def test_dropout_runs_before_or_after_the_input_convs(before):
    class Toy(_Toy):
        dropout_before_proj = before

    torch.manual_seed(0)
    toy = Toy(in_channels=[2, 2], out_channels=[3, 3], arch=(0, 0, 0), input_pdrop=0.5).train()
    x, mask = torch.randn(1, 4, 5), torch.ones(1, 5, dtype=torch.bool)

    def convs(h):
        return torch.cat([proj(part, mask)[0] for proj, part in zip(toy.proj, h.split([2, 2], dim=1))], dim=1)

    torch.manual_seed(7)
    expected = convs(toy.input_pdrop(x)) if before else toy.input_pdrop(convs(x))
    torch.manual_seed(7)
    other = toy.input_pdrop(convs(x)) if before else convs(toy.input_pdrop(x))
    torch.manual_seed(7)
    out = toy(x, mask)[0][0]
    assert torch.equal(out, expected) and not torch.equal(out, other)


def test_input_noise_only_in_training():
    toy = _Toy(in_channels=3, out_channels=3, arch=(0, 0, 0), input_noise=0.5)
    x, mask = torch.randn(2, 3, 5), torch.ones(2, 5, dtype=torch.bool)
    torch.manual_seed(3)
    noisy = toy.train()(x, mask)[0][0]
    torch.manual_seed(3)
    assert torch.equal(noisy, x + torch.randn_like(x) * 0.5)
    assert torch.equal(toy.eval()(x, mask)[0][0], x)


def test_position_table_hand_worked_masked_stretched_and_bounded():
    toy = _Toy(in_channels=4, out_channels=4, arch=(0, 0, 0), use_abs_pe=True, max_seq_len=8).eval()
    assert "pos_embed" not in toy.state_dict()
    mask = torch.tensor([[True, True, True, False]])
    out = toy(torch.zeros(1, 4, 4), mask)[0][0]
    # channel 0: sin(p) / sqrt(4), channel 1: cos(p) / sqrt(4); the padded step gets nothing.
    # float32 rounding of float64 values <= 0.5 in size: error <= 2^-25.
    expected = torch.tensor([[math.sin(p) / 2 for p in range(3)] + [0.0], [math.cos(p) / 2 for p in range(3)] + [0.0]])
    torch.testing.assert_close(out[0, :2], expected, rtol=0, atol=2.0**-25)
    long = toy(torch.zeros(1, 4, 16), torch.ones(1, 16, dtype=torch.bool))[0][0]  # >= max_seq_len: stretched
    table = sinusoid_encoding(8, 4) / 2.0
    assert torch.equal(long, F.interpolate(table, 16, mode="linear", align_corners=False))
    toy.train()
    assert torch.equal(toy(torch.zeros(1, 4, 8), torch.ones(1, 8, dtype=torch.bool))[0][0], table)
    with pytest.raises(ValueError, match="_Toy: training input of length 9 exceeds max_seq_len=8"):
        toy(torch.zeros(1, 4, 9), torch.ones(1, 9, dtype=torch.bool))


def test_bias_init_switch_and_no_reinit_mark():
    torch.manual_seed(0)
    zeroed = _Toy(in_channels=3, out_channels=4, arch=(0, 0, 1))
    kept = _NoStem(in_channels=3, out_channels=4, arch=(0, 0, 1))
    assert not zeroed.branch[0].probe.bias.any() and kept.branch[0].probe.bias.abs().min() > 0
    marked, plain = nn.Linear(2, 3), nn.Conv1d(2, 3, 1)
    marked.bias._no_reinit = True
    before = marked.bias.detach().clone()
    nn.Sequential(marked, plain).apply(zero_bias)
    assert torch.equal(marked.bias, before) and not plain.bias.any()


def test_helpers_and_errors_name_the_class_and_option():
    assert per_level(3, 4, "w") == [3, 3, 3, 3] and per_level((1, 2), 2, "w") == [1, 2]
    with pytest.raises(ValueError, match=r"attn_cfg.n_mha_win_size has 1 entries; .*1 \+ arch\[2\] = 2"):
        per_level([5], 2, "attn_cfg.n_mha_win_size")
    assert build_input_proj(6, 8) == (None, 6, 8)
    proj, width_in, width = build_input_proj([4, 2], [5, 3])
    assert (width_in, width) == (8, 8)
    assert set(proj.state_dict()) == {f"{i}.conv.{p}" for i in (0, 1) for p in ("weight", "bias")}
    with pytest.raises(ValueError, match="out_channels must be an int"):
        build_input_proj(6, [4])
    with pytest.raises(ValueError, match="lists of one length"):
        build_input_proj([4, 2], [4])
    with pytest.raises(ValueError, match="_Toy arch must be"):
        _Toy(in_channels=3, out_channels=3, arch=(1, 2))
    with pytest.raises(ValueError, match="use_abs_pe needs max_seq_len"):
        _Toy(in_channels=3, out_channels=3, arch=(0, 0, 0), use_abs_pe=True)
    with pytest.raises(NotImplementedError, match="PyramidProj must implement make_block"):
        PyramidProj(in_channels=3, out_channels=3, arch=(0, 1, 0))


class _Keyed(EmbedPyramidProj):
    conv_options = ConvOptions

    def __init__(self, *, extra: int = 1, **kwargs):
        self.extra = extra
        super().__init__(**kwargs)

    def make_block(self, index, width, stride):
        return _Step(stride, self.extra)


def test_embed_frame_keys_and_conv_cfg():
    keys, open_ = config_keywords(_Keyed)
    frame = {"in_channels", "out_channels", "arch", "conv_cfg", "norm_cfg", "use_abs_pe", "max_seq_len", "input_pdrop"}
    assert not open_ and set(keys) == frame | {"extra"}
    keyed = _Keyed(in_channels=4, out_channels=6, arch=(2, 1, 1), conv_cfg=dict(kernel_size=5, proj_pdrop=0.1))
    assert keyed.conv_opts == ConvOptions(kernel_size=5, proj_pdrop=0.1)
    assert [(c.conv.kernel_size, c.conv.padding) for c in keyed.embed] == [((5,), (2,)), ((5,), (2,))]
    with pytest.raises(ConfigError, match=r"_Keyed\.conv_cfg"):
        _Keyed(in_channels=4, out_channels=6, conv_cfg=dict(kernel=3))
