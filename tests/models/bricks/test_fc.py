"""ConvFC and FCHead: upstream's keys, init and forward (against the formulas)."""
import pytest
import torch
import torch.nn.functional as F

from opentad.models.bricks.fc import ConvFC, FCHead


def test_convfc_keys_and_forward():
    torch.manual_seed(0)
    block = ConvFC(in_channels=6, roi_size=4, convs_num=2, convs_channel=5, fcs_num=2, fcs_channel=7)
    state = block.state_dict()
    assert sorted(state) == sorted(f"{part}.{i}.0.{p}" for part in ("convs", "fcs") for i in range(2)
                                   for p in ("weight", "bias"))
    assert tuple(state["fcs.0.0.weight"].shape) == (7, 20)  # 5 channels x 4 bins
    assert all(state[k].abs().max() == 0 for k in state if k.endswith("bias"))
    for p in block.parameters():
        p.data.uniform_(-0.5, 0.5)
    x = torch.randn(3, 6, 4, dtype=torch.float64)
    s = {k: v.double() for k, v in block.state_dict().items()}
    y = x
    for i in range(2):
        y = torch.relu(F.conv1d(y, s[f"convs.{i}.0.weight"], s[f"convs.{i}.0.bias"], padding=1))
    y = y.flatten(1)
    for i in range(2):
        y = torch.relu(y @ s[f"fcs.{i}.0.weight"].T + s[f"fcs.{i}.0.bias"])
    assert torch.allclose(block.double()(x), y, rtol=0, atol=1e-12)  # float64 both ways, a few dozen roundings


def test_convfc_without_fcs_keeps_bins():
    block = ConvFC(in_channels=6, roi_size=4, convs_num=1, convs_channel=5, fcs_num=0)
    assert block(torch.randn(2, 6, 4)).shape == (2, 5, 4)


def test_fchead_keys_and_xavier_init():
    torch.manual_seed(0)
    head = FCHead(in_channels=10, out_channels=3, fcs_num=2, fcs_channel=8)
    assert sorted(head.state_dict()) == ["fcs.0.0.bias", "fcs.0.0.weight", "fcs.1.0.bias", "fcs.1.0.weight",
                                         "head.bias", "head.weight"]
    bound = (6 / (10 + 8)) ** 0.5  # Xavier-uniform bound of the first layer
    assert head.fcs[0][0].weight.abs().max() <= bound and head.head.bias.abs().max() == 0
    assert head(torch.randn(4, 10)).shape == (4, 3)
    with pytest.raises(ValueError, match="fcs_num"):
        FCHead(in_channels=10, out_channels=3, fcs_num=0)
