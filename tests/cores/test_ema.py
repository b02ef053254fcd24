"""ModelEma blends floating-point tensors only; integer / packed tensors are copied bit for bit."""
import pytest
import torch
import torch.nn as nn

from opentad.utils.ema import ModelEma


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("packed", torch.zeros(5, dtype=torch.uint8))  # e.g. 4-bit weights, two per byte
        self.register_buffer("codes", torch.zeros(4, dtype=torch.int8))
        self.register_buffer("count", torch.tensor(0, dtype=torch.long))
        self.register_buffer("running", torch.zeros(2, dtype=torch.float64))


def test_update_blends_floats_and_copies_the_rest():
    torch.manual_seed(0)
    model = Mixed()
    ema = ModelEma(model, decay=0.9)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        model.linear.weight.add_(1.0)
        model.running.fill_(10.0)
        model.packed.copy_(torch.tensor([255, 1, 128, 7, 200], dtype=torch.uint8))
        model.codes.copy_(torch.tensor([-128, 127, -1, 3], dtype=torch.int8))
        model.count.fill_(12345)
    ema.update(model)
    state = ema.module.state_dict()
    for key in ("linear.weight", "linear.bias", "running"):
        expected = 0.9 * before[key] + 0.1 * model.state_dict()[key]
        assert torch.allclose(state[key], expected, atol=1e-7), key
    for key in ("packed", "codes", "count"):
        assert state[key].dtype == model.state_dict()[key].dtype
        assert torch.equal(state[key], model.state_dict()[key]), key  # bit-identical copy, not an average


def test_set_copies_everything_and_ema_does_not_train():
    model = Mixed()
    ema = ModelEma(model, decay=0.5)
    with torch.no_grad():
        model.linear.weight.mul_(3)
    ema.set(model)
    assert torch.equal(ema.module.linear.weight, model.linear.weight)
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert ema.module.linear.weight.data_ptr() != model.linear.weight.data_ptr()


def test_bad_decay():
    with pytest.raises(ValueError, match="decay"):
        ModelEma(nn.Linear(1, 1), decay=1.5)
