"""LSTMNeck: upstream's keys, and its output against a float64 reference written from the formulas."""
import pytest
import torch
import torch.nn.functional as F

from opentad.models.necks.etad_lstm import LSTMNeck
from opentad.registry import NECKS, build

UPSTREAM_KEYS = [
    *(f"{lstm}.{p}_l0" for lstm in ("mem_f", "mem_b") for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")),
    *(f"{layer}.{p}" for layer in ("layer2_f", "layer2_b", "layer2_d", "layer3")
      for p in ("conv.weight", "norm.weight", "norm.bias")),
]


@pytest.fixture(scope="module")
def neck():
    torch.manual_seed(0)
    module = build(dict(type="LSTMNeck", in_channels=16, out_channels=24, conv_cfg=dict(groups=4),
                        norm_cfg=dict(type="GN", num_groups=4)), NECKS)
    for p in module.parameters():  # GroupNorm starts as identity: make every parameter matter
        p.data.uniform_(-0.5, 0.5)
    return module


def test_upstream_keys_load_strictly(neck):
    state = neck.state_dict()
    assert sorted(state) == sorted(UPSTREAM_KEYS)
    shapes = {"mem_f.weight_ih_l0": (64, 16), "layer2_f.conv.weight": (8, 4, 3), "layer2_d.conv.weight": (16, 4, 3),
              "layer3.conv.weight": (24, 8, 1), "layer3.norm.weight": (24,)}
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    LSTMNeck(in_channels=16, out_channels=24, norm_cfg=dict(type="GN", num_groups=4)).load_state_dict(state, strict=True)


def _lstm(x, state, name):
    """``x [T, C]`` -> hidden states ``[T, C]``: PyTorch's gate order i, f, g, o."""
    w_ih, w_hh = state[f"{name}.weight_ih_l0"], state[f"{name}.weight_hh_l0"]
    bias = state[f"{name}.bias_ih_l0"] + state[f"{name}.bias_hh_l0"]
    h = c = torch.zeros(w_hh.shape[1], dtype=x.dtype)
    out = []
    for step in x:
        i, f, g, o = (w_ih @ step + w_hh @ h + bias).chunk(4)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        out.append(h)
    return torch.stack(out)


def _conv(x, state, name, mask):
    """``[C, T]``: grouped conv (no bias), mask, GroupNorm of 4 groups, ReLU, mask."""
    weight = state[f"{name}.conv.weight"]
    y = F.conv1d(x[None], weight, padding=weight.shape[-1] // 2, groups=4)[0] * mask
    y = F.group_norm(y[None], 4, state[f"{name}.norm.weight"], state[f"{name}.norm.bias"])[0]
    return torch.relu(y) * mask


def _reference(x, mask, state):
    forward = _lstm(x.T, state, "mem_f").T
    backward = _lstm(x.T.flip(0), state, "mem_b").flip(0).T
    cat = torch.cat((_conv(forward, state, "layer2_f", mask), _conv(x, state, "layer2_d", mask),
                     _conv(backward, state, "layer2_b", mask)))
    return _conv(cat, state, "layer3", mask)


def test_output_matches_the_formulas(neck):
    """float64 both ways: a few hundred roundings of 2^-53 per value stay far below 1e-10."""
    torch.manual_seed(1)
    x = torch.randn(2, 16, 12, dtype=torch.float64)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 9:] = False
    model = neck.double()
    out, out_mask = model(x, mask)
    state = {k: v.double() for k, v in model.state_dict().items()}
    assert torch.equal(out_mask, mask) and out.shape == (2, 24, 12)
    for b in range(2):
        assert torch.allclose(out[b], _reference(x[b], mask[b].double(), state), rtol=0, atol=1e-10)
    assert out[1, :, 9:].abs().max() == 0  # padded steps are zero
    neck.float()


def test_every_parameter_and_the_input_get_gradients(neck):
    x = torch.randn(2, 16, 10, requires_grad=True)
    out, _ = neck(x, torch.ones(2, 10, dtype=torch.bool))
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in neck.parameters())
    assert x.grad.abs().sum() > 0
    neck.zero_grad()


def test_upstream_defaults_are_groups_4_and_groupnorm_16():
    neck = LSTMNeck(in_channels=32, out_channels=32)
    assert neck.layer2_d.conv.groups == 4
    assert isinstance(neck.layer3.norm, torch.nn.GroupNorm) and neck.layer3.norm.num_groups == 16
