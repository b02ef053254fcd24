"""Conv1DTransformerProj: pyramid shapes, masks, options, state-dict names."""
import pytest
import torch

from opentad.models.projections import Conv1DTransformerProj
from opentad.registry import PROJECTIONS, build


def _proj(**overrides):
    cfg = dict(
        type="Conv1DTransformerProj",
        in_channels=6,
        out_channels=8,
        arch=(2, 1, 3),
        conv_cfg=dict(kernel_size=3, proj_pdrop=0.0),
        norm_cfg=dict(type="LN"),
        attn_cfg=dict(n_head=2, n_mha_win_size=5),
        path_pdrop=0.1,
        max_seq_len=64,
    )
    cfg.update(overrides)
    torch.manual_seed(0)
    return build(cfg, PROJECTIONS).eval()


def test_pyramid_shapes_and_masks():
    proj = _proj()
    mask = torch.zeros(2, 32, dtype=torch.bool)
    mask[0] = True
    mask[1, :20] = True
    feats, masks = proj(torch.randn(2, 6, 32), mask)
    assert [tuple(f.shape) for f in feats] == [(2, 8, 32), (2, 8, 16), (2, 8, 8), (2, 8, 4)]
    # level l keeps the validity of step 2^l * i: 20 valid -> 20, 10, 5, 3
    assert [int(m[1].sum()) for m in masks] == [20, 10, 5, 3]
    for f, m in zip(feats, masks):
        assert (f[1][:, ~m[1]] == 0).all()


@pytest.mark.parametrize("window", [5, -1])
@pytest.mark.parametrize("use_abs_pe", [False, True])
def test_padded_content_and_padding_never_change_valid_outputs(window, use_abs_pe):
    proj = _proj(attn_cfg=dict(n_head=2, n_mha_win_size=window), use_abs_pe=use_abs_pe)
    x = torch.randn(1, 6, 16)  # 16 valid steps: every level has an even number of valid steps
    alone, alone_masks = proj(x, torch.ones(1, 16, dtype=torch.bool))
    padded = torch.cat([x, 50 * torch.randn(1, 6, 24)], dim=-1)  # garbage in the padding
    mask = torch.tensor([[True] * 16 + [False] * 24])
    feats, masks = proj(padded, mask)
    for a, f, am, m in zip(alone, feats, alone_masks, masks):
        n = a.shape[-1]
        torch.testing.assert_close(f[..., :n], a, rtol=1e-4, atol=1e-5)
        assert (f[..., n:] == 0).all() and m[0, :n].all() and not m[0, n:].any()


def test_multi_feature_input_gets_one_projection_each():
    proj = _proj(in_channels=[4, 2], out_channels=[4, 4], attn_cfg=dict(n_head=2, n_mha_win_size=[5, 5, 5, -1]))
    assert {k for k in proj.state_dict() if k.startswith("proj.")} == {
        "proj.0.conv.weight", "proj.0.conv.bias", "proj.1.conv.weight", "proj.1.conv.bias"
    }
    feats, _ = proj(torch.randn(1, 6, 16), torch.ones(1, 16, dtype=torch.bool))
    assert feats[0].shape == (1, 8, 16)


def test_position_table_is_added_on_valid_steps_and_not_saved():
    proj = _proj(use_abs_pe=True)
    assert "pos_embed" not in proj.state_dict()
    assert proj.pos_embed.shape == (1, 8, 64)
    proj.train()
    with pytest.raises(ValueError, match="max_seq_len"):
        proj(torch.randn(1, 6, 128), torch.ones(1, 128, dtype=torch.bool))
    proj.eval()  # longer inputs at test time stretch the table
    feats, _ = proj(torch.randn(1, 6, 128), torch.ones(1, 128, dtype=torch.bool))
    assert feats[0].shape == (1, 8, 128)


def test_state_dict_names_follow_upstream():
    keys = set(_proj(arch=(1, 1, 1)).state_dict())
    expected = {"embed.0.conv.weight", "embed.0.norm.weight", "embed.0.norm.bias"}
    for block in ("stem.0", "branch.0"):
        expected |= {f"{block}.{n}.{p}" for n in ("ln1", "ln2") for p in ("weight", "bias")}
        expected |= {f"{block}.attn.{n}.conv.weight" for n in ("query_conv", "key_conv", "value_conv")}
        norms = ("query_norm", "key_norm", "value_norm")
        expected |= {f"{block}.attn.{n}.{p}" for n in norms for p in ("weight", "bias")}
        expected |= {f"{block}.attn.{n}.{p}" for n in ("query", "key", "value", "proj") for p in ("weight", "bias")}
        expected |= {f"{block}.mlp.{i}.{p}" for i in (0, 3) for p in ("weight", "bias")}
        expected |= {f"{block}.drop_path_attn.scale", f"{block}.drop_path_mlp.scale"}
    assert keys == expected


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="n_mha_win_size"):
        _proj(attn_cfg=dict(n_head=2, n_mha_win_size=[5, 5]))
    with pytest.raises(ValueError, match="kernel"):
        _proj(conv_cfg=dict(kernel=3))
    with pytest.raises(ValueError, match="arch"):
        _proj(arch=(2, 2))
