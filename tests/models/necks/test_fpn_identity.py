"""FPNIdentity: per-level LayerNorm over channels, masks passed through."""
import pytest
import torch
import torch.nn as nn

from opentad.registry import NECKS, build


def _inputs(levels=3, channels=4):
    feats = [torch.randn(2, channels, 16 // 2**i) for i in range(levels)]
    masks = [torch.rand(2, 16 // 2**i) > 0.3 for i in range(levels)]
    return feats, masks


def test_each_level_normalised_over_channels_with_its_own_parameters():
    neck = build(dict(type="FPNIdentity", in_channels=4, out_channels=4, num_levels=3), NECKS)
    with torch.no_grad():
        for p in neck.parameters():
            p.uniform_()
    feats, masks = _inputs()
    out, out_masks = neck(feats, masks)
    for i, (x, y) in enumerate(zip(feats, out)):
        # hand-written LayerNorm over channels with eps 1e-6 and level i's affine parameters
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, unbiased=False, keepdim=True)
        w, b = neck.fpn_norms[i].weight[None, :, None], neck.fpn_norms[i].bias[None, :, None]
        torch.testing.assert_close(y, (x - mean) / torch.sqrt(var + 1e-6) * w + b)
    assert all(a is b for a, b in zip(out_masks, masks))
    assert set(neck.state_dict()) == {f"fpn_norms.{i}.{p}" for i in range(3) for p in ("weight", "bias")}


def test_level_range_and_no_norm():
    neck = build(
        dict(type="FPNIdentity", in_channels=4, out_channels=4, num_levels=3, start_level=1, end_level=3,
             norm_cfg=None),
        NECKS,
    )
    feats, masks = _inputs()
    out, out_masks = neck(feats, masks)
    assert len(out) == 2 and out[0] is feats[1] and out_masks[1] is masks[2]
    assert not neck.state_dict()
    assert isinstance(neck.fpn_norms[0], nn.Identity)


def test_errors():
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        build(dict(type="FPNIdentity", in_channels=4, out_channels=8, num_levels=2), NECKS)
    with pytest.raises(ValueError, match="start_level"):
        build(dict(type="FPNIdentity", in_channels=4, out_channels=4, num_levels=2, start_level=2), NECKS)
    neck = build(dict(type="FPNIdentity", in_channels=4, out_channels=4, num_levels=2), NECKS)
    with pytest.raises(ValueError, match="2 levels"):
        neck(*_inputs(levels=3))
