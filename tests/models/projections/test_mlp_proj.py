"""ConvSingleProj: upstream's keys, masked convs, the number of blocks."""
import pytest
import torch
import torch.nn.functional as F

from opentad.models.projections import ConvSingleProj
from opentad.registry import PROJECTIONS, build


def test_keys_and_arithmetic_are_conv_relu_mask_per_block():
    proj = build(dict(type="ConvSingleProj", in_channels=8, out_channels=4, num_convs=2, conv_cfg=dict(groups=2)),
                 PROJECTIONS)
    shapes = {k: tuple(v.shape) for k, v in proj.state_dict().items()}
    assert shapes == {"convs.0.conv.weight": (4, 4, 3), "convs.0.conv.bias": (4,),
                      "convs.1.conv.weight": (4, 2, 3), "convs.1.conv.bias": (4,)}
    x = torch.randn(2, 8, 10, dtype=torch.float64)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False
    proj.double()
    out, out_mask = proj(x, mask)
    ref = x
    for block in proj.convs:
        ref = F.relu(F.conv1d(ref, block.conv.weight, block.conv.bias, padding=1, groups=2)) * mask[:, None]
    assert torch.equal(out_mask, mask)
    assert torch.allclose(out, ref, rtol=0, atol=1e-12)


def test_zero_convs_is_refused():
    with pytest.raises(ValueError, match="num_convs"):
        ConvSingleProj(in_channels=4, out_channels=4, num_convs=0)
