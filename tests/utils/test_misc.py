"""opentad.utils.misc.set_rng_state restores a snapshot whose tensors are on a device (a checkpoint read with
``map_location=cuda`` on a GPU run): each is copied to the host first, as ``Trainer.resume`` needs; parameter
counts by hand."""
import random

import numpy as np
import pytest
import torch

from opentad.utils import checkpoint as ckpt
from opentad.utils.misc import get_rng_state, set_rng_state


class DeviceTensor(torch.Tensor):
    """Stands in for a GPU tensor on a CPU-only host: like one, it refuses ``.numpy()`` until copied to the host."""

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                        "to host memory first.")

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor).clone()


def _on_device(value):
    """``value`` (a snapshot, nested lists and dicts) with every tensor made a :class:`DeviceTensor`."""
    if isinstance(value, torch.Tensor):
        return value.clone().as_subclass(DeviceTensor)
    if isinstance(value, dict):
        return {k: _on_device(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_device(v) for v in value)
    return value


def _draws():
    return random.random(), np.random.randn(3).tolist(), torch.randn(3)


def test_snapshot_read_onto_a_device_restores_every_generator(tmp_path):
    random.seed(5), np.random.seed(6), torch.manual_seed(7)
    _draws()
    path = str(tmp_path / "rng.pth")
    ckpt.atomic_save({"rng": get_rng_state()}, path)
    expected = _draws()  # what the generators give right after the snapshot
    _draws()
    state = _on_device(torch.load(path, weights_only=True)["rng"])
    assert isinstance(state["numpy"][1], DeviceTensor) and isinstance(state["torch"], DeviceTensor)
    set_rng_state(state)
    got = _draws()
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_parameter_parts_count_each_top_level_child():
    from torch import nn

    from opentad.utils.misc import format_parameter_parts

    model = nn.Module()
    model.backbone = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 2))  # 110 + 22 parameters
    model.backbone[0].requires_grad_(False)
    model.neck = nn.Identity()  # no parameters: not listed
    model.rpn_head = nn.Linear(4, 1, bias=False)
    assert format_parameter_parts(model) == (
        "trainable params by part: backbone 22 / 132 (16.67%) || rpn_head 4 / 4 (100.00%)"
    )


def test_count_parameters_counts_quantized_weights_at_their_logical_size():
    """Hand counts: a 4-bit [3, 5] weight (15 values in 8 packed bytes) and an int8 [4, 3] weight, both frozen with
    their float biases (3 + 4), and a trainable float [2, 4] head with its bias (10)."""
    pytest.importorskip("bitsandbytes")
    from torch import nn

    from opentad.models.bricks.quant import QuantSpec, quantize_linear
    from opentad.utils.misc import count_parameters, format_parameter_count

    torch.manual_seed(0)
    model = nn.Sequential(quantize_linear(nn.Linear(5, 3), QuantSpec(bits=4)),
                          quantize_linear(nn.Linear(3, 4), QuantSpec(bits=8)), nn.Linear(4, 2))
    assert model[0].weight.numel() == 8  # packed: what a plain numel would count
    count = count_parameters(model)
    assert count == (10, 15 + 3 + 12 + 4 + 10) and (count.trainable, count.total, count.packed) == (10, 44, 15 + 12)
    assert format_parameter_count(model) == "trainable params: 10 || all params: 44 || trainable%: 22.7273"
