"""TriDetProj: pyramid shapes and masks, input noise only in training, masked position table, bad arguments."""
import pytest
import torch

from opentad.models.bricks.sgp import SGPBlock
from opentad.registry import PROJECTIONS, ConfigError, build


def _proj(**overrides):
    cfg = dict(type="TriDetProj", in_channels=8, out_channels=16, sgp_mlp_dim=24, arch=(2, 1, 3),
               sgp_win_size=[1, 1, 3, 1], k=5, init_conv_vars=0.1, conv_cfg=dict(kernel_size=3),
               norm_cfg=dict(type="LN"), path_pdrop=0.1, max_seq_len=32)
    cfg.update(overrides)
    torch.manual_seed(0)
    return build(cfg, PROJECTIONS)


def test_pyramid_shapes_masks_and_blocks():
    proj = _proj().eval()
    x, mask = torch.randn(2, 8, 32), torch.ones(2, 32, dtype=torch.bool)
    mask[1, 20:] = False
    feats, masks = proj(x, mask)
    assert [f.shape for f in feats] == [(2, 16, 32 >> i) for i in range(4)]
    assert [m.sum(-1).tolist() for m in masks] == [[32, 20], [16, 10], [8, 5], [4, 3]]  # nearest: step 2i
    assert all(isinstance(b, SGPBlock) for b in list(proj.stem) + list(proj.branch))
    assert isinstance(proj.stem[0].drop_path_out, torch.nn.Identity)  # the stem has no drop path, as upstream
    assert proj.branch[1].convw.kernel_size == (3,) and proj.branch[0].convw.kernel_size == (1,)
    assert proj.branch[0].convkw.kernel_size == (11,)


def test_input_noise_only_in_training():
    proj = _proj(input_noise=0.5, path_pdrop=0.0)
    x, mask = torch.randn(1, 8, 32), torch.ones(1, 32, dtype=torch.bool)
    proj.eval()
    clean = proj(x, mask)[0][0]
    assert torch.equal(clean, proj(x, mask)[0][0])
    proj.train()
    torch.manual_seed(1)
    noisy = proj(x, mask)[0][0]
    torch.manual_seed(1)
    noise = torch.randn_like(x)  # the same draw
    proj.input_noise = 0.0
    torch.testing.assert_close(noisy, proj(x + noise * 0.5, mask)[0][0], rtol=0, atol=0)
    assert not torch.equal(noisy, clean)


def test_position_table_is_masked_and_bounded():
    proj = _proj(use_abs_pe=True, path_pdrop=0.0).eval()
    assert "pos_embed" not in proj.state_dict()  # not persistent, as upstream
    x, mask = torch.randn(1, 8, 32), torch.ones(1, 32, dtype=torch.bool)
    mask[0, 24:] = False
    with_pe = proj(x, mask)[0][0]
    proj.use_abs_pe = False
    without = proj(x, mask)[0][0]
    assert not torch.equal(with_pe, without)
    proj.use_abs_pe = True
    proj.train()
    with pytest.raises(ValueError, match="max_seq_len"):
        proj(torch.randn(1, 8, 64), torch.ones(1, 64, dtype=torch.bool))


def test_bad_arguments():
    with pytest.raises(ValueError, match="sgp_win_size"):
        _proj(sgp_win_size=[1, 1, 1])
    with pytest.raises(ValueError, match="arch"):
        _proj(arch=(2, 2))
    with pytest.raises(ConfigError, match="kernel_sise"):
        _proj(conv_cfg=dict(kernel_sise=3))
