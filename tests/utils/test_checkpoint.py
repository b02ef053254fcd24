"""load_weights (``--load-from``): every checkpoint layout round-trips to equal weights; mismatches are reported.

load_checkpoint (``--checkpoint``) of a file from another model: one line naming the file and what to do.
"""
import logging
import os

import pytest
import torch
import torch.nn as nn

from opentad.utils.checkpoint import (
    CheckpointError,
    atomic_save,
    load_checkpoint,
    load_model_state_from,
    load_weights,
    model_state_dict,
    model_weights,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QLORA = os.path.join(ROOT, "configs", "adatad", "synthetic", "e2e_synthetic_vit_tiny_qlora.py")


def net(seed, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, classes))


def same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def layouts(source, ema):
    """The layouts a fine-tuning run may be given (this project's, upstream OpenTAD's, bare state dicts)."""
    prefixed, plain = model_state_dict(source), source.state_dict()
    return {
        "training state": {"epoch": 4, "state_dict": prefixed, "optimizer": {}, "scheduler": {}, "meta": {}},
        "weights only": {"epoch": 4, "state_dict": plain},
        "ema only": {"state_dict_ema": prefixed},
        "bare, module. prefix": prefixed,
        "bare": dict(plain),
        "both, ema differs": {"state_dict": prefixed, "state_dict_ema": model_state_dict(ema)},
    }


@pytest.mark.parametrize("layout", ["training state", "weights only", "ema only", "bare, module. prefix", "bare",
                                    "both, ema differs"])
def test_every_layout_round_trips(tmp_path, layout):
    source, ema = net(0), net(7)
    source[1].running_mean.uniform_()  # buffers travel too
    path = str(tmp_path / "ckpt.pth")
    atomic_save(layouts(source, ema)[layout], path)
    target = net(1)
    assert not same(target, source)
    report = load_weights(target, path)
    assert same(target, source)  # without use_ema the plain weights win when both exist
    assert report.missing_keys == [] and report.unexpected_keys == [] and report.mismatched == []


def test_use_ema_prefers_the_ema_weights(tmp_path):
    source, ema = net(0), net(7)
    path = str(tmp_path / "ckpt.pth")
    atomic_save(layouts(source, ema)["both, ema differs"], path)
    target = net(1)
    load_weights(target, path, use_ema=True)
    assert same(target, ema)
    atomic_save({"state_dict": model_state_dict(source)}, path)  # no EMA in the file: falls back, warns
    load_weights(target, path, use_ema=True)
    assert same(target, source)


def test_mismatches_are_reported_and_the_rest_is_loaded(tmp_path, caplog):
    source = net(0, classes=5)  # another number of classes: the last layer does not fit
    state = model_state_dict(source)
    state["module.extra.weight"] = torch.zeros(1)
    del state["module.0.bias"]
    path = str(tmp_path / "ckpt.pth")
    atomic_save({"state_dict": state}, path)
    target, before = net(1, classes=3), net(1, classes=3)
    with caplog.at_level(logging.INFO, logger="opentad"):
        report = load_weights(target, path)
    assert report.unexpected_keys == ["extra.weight"]
    assert report.missing_keys == ["0.bias", "2.bias", "2.weight"]
    assert report.mismatched == ["2.bias: file (5,) vs model (3,)", "2.weight: file (5, 8) vs model (3, 8)"]
    assert torch.equal(target[0].weight, source[0].weight) and torch.equal(target[1].weight, source[1].weight)
    assert torch.equal(target[2].weight, before[2].weight) and torch.equal(target[0].bias, before[0].bias)
    text = caplog.text
    assert "extra.weight" in text and "2.weight: file (5, 8) vs model (3, 8)" in text and "0.bias" in text
    assert "1 unexpected, 2 shape-mismatched" in text


def test_a_file_without_weights_is_refused(tmp_path):
    path = str(tmp_path / "ckpt.pth")
    atomic_save({"epoch": 3, "optimizer": {}}, path)
    with pytest.raises(CheckpointError, match="holds no model weights"):
        load_weights(net(0), path)


def test_model_weights_names_its_source():
    state = {"w": torch.ones(1)}
    assert model_weights({"state_dict": state}, path="p")[1] == "state_dict"
    assert model_weights({"state_dict_ema": state}, path="p")[1] == "state_dict_ema"
    assert model_weights(state, path="p")[1] == "(file)"
    with pytest.raises(CheckpointError, match="state_dict_ema"):
        model_weights({"state_dict": state}, path="p", use_ema=True, ema_required=True)


def test_qlora_adapter_only_checkpoint_round_trips(tmp_path):
    """This project's QLoRA checkpoints (adapters, LoRA, head and quantized bytes; docs/qlora.md) load too."""
    from opentad.models.bricks.lora import LoRALinear
    from opentad.models.utils.qlora import QLORA_FORMAT
    from opentad.registry import DETECTORS, build
    from opentad.utils.config import load_config

    cfg = load_config(QLORA).model
    torch.manual_seed(0)
    source = build(cfg, DETECTORS).eval()
    with torch.no_grad():  # stand-in for training
        for m in source.modules():
            if isinstance(m, LoRALinear):
                m.lora_b.weight.normal_(0, 0.05)
    state = model_state_dict(source)
    assert state["module.format"] == QLORA_FORMAT
    path = str(tmp_path / "qlora.pth")
    atomic_save({"epoch": 2, "state_dict": state}, path)
    torch.manual_seed(1)
    target = build(cfg, DETECTORS).eval()
    report = load_weights(target, path)
    assert report.missing_keys == [] and report.unexpected_keys == []
    got, want = target.checkpoint_state_dict(), source.checkpoint_state_dict()
    assert got["float"].keys() == want["float"].keys()
    assert all(torch.equal(got["float"][k], want["float"][k]) for k in want["float"])
    frames = torch.randint(0, 256, (1, 1, 3, 128, 64, 64), dtype=torch.uint8)
    masks = torch.ones(1, 128, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(target.backbone(frames, masks), source.backbone(frames, masks))


def test_qlora_checkpoint_with_another_head_loads_the_rest(tmp_path):
    """``--load-from`` a QLoRA run trained for other classes: the head's tensors are left out, the rest loads."""
    from opentad.models.bricks.lora import LoRALinear
    from opentad.registry import DETECTORS, build
    from opentad.utils.config import load_config

    cfg = load_config(QLORA).model
    classes = cfg.rpn_head.num_classes
    cfg.rpn_head.num_classes = classes + 3
    torch.manual_seed(0)
    source = build(cfg, DETECTORS).eval()
    with torch.no_grad():
        for m in source.modules():
            if isinstance(m, LoRALinear):
                m.lora_b.weight.normal_(0, 0.05)
    path = str(tmp_path / "other_classes.pth")
    atomic_save({"epoch": 1, "state_dict": model_state_dict(source)}, path)
    cfg.rpn_head.num_classes = classes
    torch.manual_seed(1)
    target = build(cfg, DETECTORS).eval()
    head_before = {k: v.clone() for k, v in target.rpn_head.state_dict().items()}
    report = load_weights(target, path)
    want = source.checkpoint_state_dict()["float"]
    got = target.checkpoint_state_dict()["float"]
    differ = sorted(k for k in want if want[k].shape != got[k].shape)
    assert differ and all(k.startswith("rpn_head.") for k in differ)
    assert [m.split(":")[0] for m in report.mismatched] == differ and set(differ) <= set(report.missing_keys)
    assert all(torch.equal(got[k], want[k]) for k in want if k not in differ)  # adapters, LoRA, the rest of the head
    assert all(torch.equal(target.rpn_head.state_dict()[k[len("rpn_head."):]], head_before[k[len("rpn_head."):]])
               for k in differ)  # left as built


def test_qlora_checkpoint_into_a_float_model_is_one_line(tmp_path):
    from opentad.models.detectors.base import BaseDetector
    from opentad.models.utils.qlora import QLORA_FORMAT

    path = str(tmp_path / "q.pth")
    atomic_save({"state_dict": {"module.format": QLORA_FORMAT, "module.float": {}}}, path)
    expected = "checkpoint and model disagree on quantization: a QLoRA checkpoint into a float model; merge it first"
    for load, what in ((load_weights, "load_from"), (load_checkpoint, "--checkpoint")):
        with pytest.raises(CheckpointError) as info:
            load(BaseDetector(neck=nn.Linear(2, 2)), path, what=what)  # a float detector
        assert str(info.value).startswith(f"{what} {path}: {expected}") and "\n" not in str(info.value)
    state = torch.load(path, weights_only=True)["state_dict"]  # what the runner's --resume loads
    with pytest.raises(CheckpointError) as info:
        load_model_state_from(BaseDetector(neck=nn.Linear(2, 2)), state, strict=True, path=path, what="--resume")
    assert str(info.value).startswith(f"--resume {path}: {expected}")


def test_checkpoint_of_another_model_says_what_the_user_can_do(tmp_path):
    """No CLI option loads with strict=False, so the message must not suggest it (issue #16, item 3.4)."""
    path = str(tmp_path / "other.pth")
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))  # index 1 has no weights, index 3 none
    atomic_save({"epoch": 0, "state_dict": model_state_dict(nn.Sequential(*other, nn.Linear(3, 3)))}, path)
    model = net(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, path, what="--checkpoint")
    message = str(info.value)
    assert message.startswith(f"--checkpoint {path}: Checkpoint does not match Sequential: missing keys [1.")
    assert "unexpected keys [3.bias, 3.weight]" in message and "\n" not in message
    assert "strict=False" not in message
    assert message.endswith(
        "The checkpoint was saved from another model: use the config it was trained with (its run folder, the one "
        "above checkpoint/, keeps a copy; compare e.g. model.rpn_head.num_classes and the backbone); to start a new "
        "training run from the weights that match, use tools/train.py --load-from")
    assert same_state(model.state_dict(), before)  # nothing loaded


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
