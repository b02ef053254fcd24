"""ConvModule3d: mmcv ConvModule's names and init for Conv3d + BN3d + ReLU, and the checked layer configs."""
import pytest
import torch
import torch.nn.functional as F

from opentad.models.bricks.conv_module import BN3dOptions, ConvModule3d, ReLUOptions, parse_layer_cfgs
from opentad.registry import ConfigError


def test_names_are_mmcvs_and_forward_is_conv_bn_relu():
    torch.manual_seed(0)
    m = ConvModule3d(3, 4, (3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0), norm=BN3dOptions(eps=1e-3))
    assert list(m.state_dict()) == ["conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                                    "bn.num_batches_tracked"]
    assert m.conv.bias is None and m.bn.eps == 1e-3
    m.bn.running_mean.uniform_(-1, 1)
    m.bn.running_var.uniform_(0.5, 2)
    m.eval()
    x = torch.randn(2, 3, 5, 4, 4)
    y = F.conv3d(x, m.conv.weight, stride=(2, 1, 1), padding=(1, 0, 0))
    expected = F.relu(F.batch_norm(y, m.bn.running_mean, m.bn.running_var, m.bn.weight, m.bn.bias, eps=1e-3))
    assert torch.equal(m(x), expected)  # the same operations on the same data
    plain = ConvModule3d(3, 4, 1, act=None)
    assert not hasattr(plain, "activate") and not plain.with_activation


def test_mmcv_init_and_frozen_norm():
    """Kaiming normal, fan-out, ReLU gain: std sqrt(2 / (64 * 27)) (fan-in would give sqrt(2) times more); the
    sample std of 64 * 32 * 27 draws is within 5 standard errors (std / sqrt(2 n)) of it. Norm weight 1,
    bias 0; requires_grad=False freezes both."""
    torch.manual_seed(0)
    m = ConvModule3d(32, 64, 3, norm=BN3dOptions(requires_grad=False), act=ReLUOptions(inplace=False))
    std, n = (2 / (64 * 27)) ** 0.5, m.conv.weight.numel()
    assert abs(m.conv.weight.std().item() - std) < 5 * std / (2 * n) ** 0.5
    assert m.bn.weight.eq(1).all() and not m.bn.bias.any()
    assert not m.bn.weight.requires_grad and not m.bn.bias.requires_grad and m.conv.weight.requires_grad
    assert not m.activate.inplace


def test_parse_layer_cfgs_accepts_mmactions_values_only():
    conv, norm, act = parse_layer_cfgs(conv_cfg=dict(type="Conv3d"), norm_cfg=dict(type="BN3d", requires_grad=False),
                                       act_cfg=dict(type="ReLU", inplace=True), owner="X")
    assert norm == BN3dOptions(requires_grad=False) and act == ReLUOptions(inplace=True)
    valid = r"X: conv_cfg type 'Conv3D' is not supported; valid: \[\{'type': 'Conv3d'\}\]"
    with pytest.raises(ConfigError, match=valid):
        parse_layer_cfgs(conv_cfg=dict(type="Conv3D"), norm_cfg=dict(type="BN3d"), act_cfg=dict(type="ReLU"), owner="X")
    with pytest.raises(ConfigError, match="bias"):
        parse_layer_cfgs(conv_cfg=dict(type="Conv3d", bias=True), norm_cfg=dict(type="BN3d"), act_cfg=dict(type="ReLU"),
                         owner="X")
    with pytest.raises(ConfigError, match="act_cfg type None"):
        parse_layer_cfgs(conv_cfg=dict(type="Conv3d"), norm_cfg=dict(type="BN3d"), act_cfg=None, owner="X")
