"""VSGNPyramidProj: level strides, masks, upstream's state-dict keys, and the two block kinds."""
import pytest
import torch
import torch.nn.functional as F

from opentad.models.bricks.gcn import xGN
from opentad.models.projections.vsgn_proj import VSGNPyramidProj


def test_levels_have_the_configured_strides_and_masks():
    torch.manual_seed(0)
    proj = VSGNPyramidProj(in_channels=6, out_channels=4, pyramid_levels=[4, 8, 16])
    x = torch.randn(2, 6, 32)
    mask = torch.ones(2, 32, dtype=torch.bool)
    mask[1, 20:] = False
    feats, masks = proj(x, mask)
    assert [f.shape for f in feats] == [(2, 4, 8), (2, 4, 4), (2, 4, 2)]  # strides 4, 8, 16
    # strided convs resize the mask by nearest sampling: step i keeps input step 2i
    assert masks[0][1].tolist() == [True] * 5 + [False] * 3
    for f, m in zip(feats, masks):
        assert torch.equal(f, f * m[:, None])
    # the first level by hand: stem conv (stride 2) then one conv (stride 2), each ReLU and masked
    stem = proj.stem_convs.conv
    h = torch.relu(F.conv1d(x, stem.weight, stem.bias, stride=2, padding=1)) * mask[:, None, ::2]
    level0 = proj.pyramid_convs[0].conv
    expected = torch.relu(F.conv1d(h, level0.weight, level0.bias, stride=2, padding=1)) * mask[:, None, ::4]
    assert torch.equal(feats[0], expected)


def test_upstream_state_dict_keys():
    conv = VSGNPyramidProj(in_channels=6, out_channels=4, pyramid_levels=[2, 4])
    assert {k: tuple(v.shape) for k, v in conv.state_dict().items()} == {
        "stem_convs.conv.weight": (4, 6, 3), "stem_convs.conv.bias": (4,),
        "pyramid_convs.0.conv.weight": (4, 4, 3), "pyramid_convs.0.conv.bias": (4,),
        "pyramid_convs.1.conv.weight": (4, 4, 3), "pyramid_convs.1.conv.bias": (4,),
    }
    gcn = VSGNPyramidProj(in_channels=6, out_channels=4, pyramid_levels=[2, 4], use_gcn=True,
                          gcn_kwargs=dict(num_neigh=2, nfeat_mode="feat_ctr", agg_type="max", edge_weight="false"))
    assert all(isinstance(block, xGN) for block in gcn.pyramid_convs)
    assert {k: tuple(v.shape) for k, v in gcn.state_dict().items()} == {
        "stem_convs.conv.weight": (4, 6, 3), "stem_convs.conv.bias": (4,),
        "pyramid_convs.0.tconv1.weight": (4, 4, 3), "pyramid_convs.0.tconv1.bias": (4,),
        "pyramid_convs.0.nconv1.mlp.weight": (4, 8), "pyramid_convs.0.nconv1.mlp.bias": (4,),
        "pyramid_convs.1.tconv1.weight": (4, 4, 3), "pyramid_convs.1.tconv1.bias": (4,),
        "pyramid_convs.1.nconv1.mlp.weight": (4, 8), "pyramid_convs.1.nconv1.mlp.bias": (4,),
    }
    feats, masks = gcn(torch.randn(1, 6, 16), torch.ones(1, 16, dtype=torch.bool))
    assert [f.shape[-1] for f in feats] == [8, 4]  # stem stride 1 (levels start at 2)


def test_rejects_a_pyramid_without_levels():
    with pytest.raises(ValueError, match="pyramid_levels"):
        VSGNPyramidProj(in_channels=4, out_channels=4, pyramid_levels=[2])
