"""Checkpoints: atomic writes, strict / non-strict loading, prefixes, model hooks, RNG snapshots."""
import os
import random

import numpy as np
import pytest
import torch
import torch.nn as nn

from opentad.utils import checkpoint as ckpt
from opentad.utils.misc import get_rng_state, preserved_rng_state, set_rng_state


def net():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_crash_during_save_keeps_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "last.pth")
    ckpt.atomic_save({"epoch": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, handle):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.atomic_save({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 1 and torch.equal(loaded["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["last.pth"]  # no temporary file left behind


def test_atomic_link_replaces_target(tmp_path):
    src, dst = str(tmp_path / "a.pth"), str(tmp_path / "b.pth")
    ckpt.atomic_save({"x": torch.arange(3)}, src)
    ckpt.atomic_save({"x": torch.zeros(1)}, dst)
    ckpt.atomic_link(src, dst)
    assert torch.equal(torch.load(dst, weights_only=True)["x"], torch.arange(3))


def test_module_prefix_round_trip(tmp_path):
    source, target = net(), net()
    state = ckpt.model_state_dict(source)
    assert all(k.startswith("module.") for k in state)  # as upstream OpenTAD files (DDP-wrapped models)
    path = str(tmp_path / "c.pth")
    ema = {k[len("module."):]: v * 2 for k, v in state.items()}
    ckpt.atomic_save({"epoch": 3, "state_dict": state, "state_dict_ema": ema}, path)
    ckpt.load_checkpoint(target, path)
    for a, b in zip(source.state_dict().values(), target.state_dict().values()):
        assert torch.equal(a, b)
    ckpt.load_checkpoint(target, path, use_ema=True)  # keys without prefix load too
    assert torch.equal(target[0].weight, source[0].weight * 2)


def test_strict_load_lists_missing_and_unexpected_and_loads_nothing():
    model = net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items() if not k.startswith("2.")}
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.load_model_state(model, state, strict=True)
    message = str(info.value)
    assert "2.weight" in message and "2.bias" in message and "extra.weight" in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    report = ckpt.load_model_state(model, state, strict=False)
    assert report.missing_keys == ["2.bias", "2.weight"] and report.unexpected_keys == ["extra.weight"]
    assert torch.count_nonzero(model[0].weight) == 0 and torch.equal(model[2].weight, before["2.weight"])


class Hooked(nn.Module):
    """Saves only its trainable tensor, as QLoRA models do."""

    def __init__(self):
        super().__init__()
        self.base = nn.Linear(2, 2)
        self.lora = nn.Parameter(torch.zeros(2))
        self.received = None

    def checkpoint_state_dict(self):
        return {"lora": self.lora.detach()}

    def load_checkpoint_state_dict(self, state_dict, strict=True):
        self.received = dict(state_dict)
        self.lora.data.copy_(state_dict["lora"])
        return [], []


def test_model_hooks_are_used(tmp_path):
    model = Hooked()
    model.lora.data.fill_(5)
    state = ckpt.model_state_dict(model)
    assert list(state) == ["module.lora"]
    other = Hooked()
    report = ckpt.load_model_state(other, state)
    assert other.received.keys() == {"lora"} and torch.equal(other.lora, model.lora)
    assert report.missing_keys == [] and report.unexpected_keys == []


def test_rng_state_round_trips_through_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.random(), np.random.randn(), torch.randn(1)
    path = str(tmp_path / "rng.pth")
    ckpt.atomic_save({"rng": get_rng_state()}, path)
    expected = (random.random(), np.random.randn(3).tolist(), torch.randn(3))
    set_rng_state(torch.load(path, weights_only=True)["rng"])
    got = (random.random(), np.random.randn(3).tolist(), torch.randn(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_preserved_rng_state():
    torch.manual_seed(0)
    with preserved_rng_state():
        torch.randn(10), random.random(), np.random.rand()
    first = torch.randn(2)
    torch.manual_seed(0)
    assert torch.equal(first, torch.randn(2))


def test_missing_file_and_missing_ema(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        ckpt.read_checkpoint(str(tmp_path / "nope.pth"))
    path = str(tmp_path / "d.pth")
    ckpt.atomic_save({"state_dict": ckpt.model_state_dict(net())}, path)
    with pytest.raises(ckpt.CheckpointError, match="state_dict_ema"):
        ckpt.load_checkpoint(net(), path, use_ema=True)
