"""TemporalMaxerProj: pyramid shapes and masks, its arithmetic, state-dict names, input variants."""
import logging

import torch
import torch.nn.functional as F

from opentad.models.projections import TemporalMaxerProj
from opentad.registry import PROJECTIONS, build


def _proj(**overrides):
    cfg = dict(type="TemporalMaxerProj", in_channels=6, out_channels=8, arch=(2, 0, 3), conv_cfg=dict(kernel_size=3),
               norm_cfg=dict(type="LN"))
    cfg.update(overrides)
    torch.manual_seed(0)
    return build(cfg, PROJECTIONS)


def test_pyramid_lengths_and_masks():
    proj = _proj()
    x = torch.randn(2, 6, 21)
    mask = torch.ones(2, 21, dtype=torch.bool)
    mask[1, 9:] = False
    x = x * mask[:, None]
    feats, masks = proj(x, mask)
    assert [f.shape[-1] for f in feats] == [21, 11, 6, 3]  # ceil halvings, no padding to a multiple
    # 9 valid steps: pooled windows {2i-1, 2i, 2i+1} -> 5 valid (i <= 4), then 3, then 2
    assert [int(m[1].sum()) for m in masks] == [9, 5, 3, 2]
    for f, m in zip(feats, masks):
        assert f.shape[:2] == (2, 8) and not f[~m[:, None].expand_as(f)].any()


def test_levels_are_max_pools_of_the_embedding():
    proj = _proj().eval()
    x = torch.randn(1, 6, 16)
    mask = torch.ones(1, 16, dtype=torch.bool)
    feats, _ = proj(x, mask)
    # the embedding: two conv + LN + ReLU layers (padding k // 2), every step valid
    h = x
    for layer in proj.embed:
        h = F.conv1d(h, layer.conv.weight, padding=1)
        h = F.layer_norm(h.transpose(1, 2), (8,), layer.norm.weight, layer.norm.bias, eps=1e-6).transpose(1, 2)
        h = h.relu()
    torch.testing.assert_close(feats[0], h, rtol=0, atol=0)  # the same operations on the same data
    for level in range(1, 4):
        assert torch.equal(feats[level], F.max_pool1d(feats[level - 1], 3, stride=2, padding=1))


def test_state_dict_names_as_upstream():
    proj = _proj(in_channels=[4, 2], out_channels=[5, 3])
    shapes = {k: tuple(v.shape) for k, v in proj.state_dict().items()}
    assert shapes == {
        "proj.0.conv.weight": (5, 4, 1), "proj.0.conv.bias": (5,),
        "proj.1.conv.weight": (3, 2, 1), "proj.1.conv.bias": (3,),
        "embed.0.conv.weight": (8, 8, 3), "embed.0.norm.weight": (8,), "embed.0.norm.bias": (8,),
        "embed.1.conv.weight": (8, 8, 3), "embed.1.norm.weight": (8,), "embed.1.norm.bias": (8,),
    }
    feats, _ = proj(torch.randn(2, 6, 8), torch.ones(2, 8, dtype=torch.bool))
    assert feats[0].shape == (2, 8, 8)


def test_drop_out_only_in_training_and_stem_ignored(caplog):
    proj = _proj(drop_out=0.5)
    x, mask = torch.randn(1, 6, 8), torch.ones(1, 8, dtype=torch.bool)
    proj.eval()
    assert torch.equal(proj(x, mask)[0][0], proj(x, mask)[0][0])
    proj.train()
    torch.manual_seed(3)
    a = proj(x, mask)[0][0]
    torch.manual_seed(4)
    assert not torch.equal(a, proj(x, mask)[0][0])
    with caplog.at_level(logging.WARNING):
        assert len(_proj(arch=(2, 2, 3)).branch) == 3
    assert "arch[1]" in caplog.text
