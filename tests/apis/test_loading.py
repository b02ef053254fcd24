"""Loading a detector for inference (opentad.apis.loading): pretrained files, shape checks, EMA choice."""
import contextlib
import copy
import logging

import pytest
import torch
from torch import nn

from opentad.apis.loading import check_state_fits, inference_model_config, read_model_state
from opentad.models.utils.qlora import QLORA_FORMAT
from opentad.utils.checkpoint import CheckpointError

@contextlib.contextmanager
def warnings_of(name):
    """Collect the WARNING records of logger ``name`` (the opentad logger may not propagate to pytest's)."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger(name).addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger(name).removeHandler(handler)


MODEL = {"type": "ActionFormer",
         "backbone": {"type": "mmaction.Recognizer3D", "custom": {"pretrain": "missing/vit.pth"},
                      "backbone": {"type": "VisionTransformerQLoRA", "adapter_pretrain": "missing/adatad.pth"}}}


def test_missing_pretrained_files_are_dropped_for_full_checkpoints():
    original = copy.deepcopy(MODEL)
    with warnings_of("opentad.apis.loading") as records:
        cfg = inference_model_config(MODEL, {"a": torch.zeros(1)}, checkpoint="ckpt.pth")
    text = " ".join(r.getMessage() for r in records)
    assert cfg["backbone"]["custom"]["pretrain"] is None and cfg["backbone"]["backbone"]["adapter_pretrain"] is None
    assert MODEL == original  # the given config is not modified
    assert "missing/vit.pth" in text and "ckpt.pth holds every weight" in text


def test_existing_pretrained_file_is_kept(tmp_path):
    weights = tmp_path / "vit.pth"
    weights.write_bytes(b"x")
    model = copy.deepcopy(MODEL)
    model["backbone"]["custom"]["pretrain"] = str(weights)
    assert inference_model_config(model, {}, checkpoint="c.pth")["backbone"]["custom"]["pretrain"] == str(weights)


def test_qlora_checkpoint_of_a_pretrained_base_needs_the_pretrained_file():
    state = {"format": QLORA_FORMAT, "float": {}, "quantized": {}, "checksums": {"backbone.x": torch.zeros(3)}}
    with pytest.raises(FileNotFoundError, match=r"q.pth is a QLoRA checkpoint.*missing/vit.pth"):
        inference_model_config(MODEL, state, checkpoint="q.pth")
    state["checksums"] = {}  # trained from a random base: everything is in the checkpoint
    assert inference_model_config(MODEL, state, checkpoint="q.pth")["backbone"]["custom"]["pretrain"] is None


class Head(nn.Module):
    def __init__(self, classes, width=8):
        super().__init__()
        self.cls_head = nn.Conv1d(width, classes, 3)
        self.reg_head = nn.Conv1d(width, 2, 3)


class Detector(nn.Module):
    def __init__(self, classes=5, width=8):
        super().__init__()
        self.rpn_head = Head(classes, width)


def test_shape_checks_name_classes_or_list_tensors():
    check_state_fits(Detector(5), Detector(5).state_dict(), checkpoint="c.pth", config="x.py")
    with pytest.raises(CheckpointError, match=r"c.pth was trained for 20 classes.*head for 5.*num_classes=20"):
        check_state_fits(Detector(5), Detector(20).state_dict(), checkpoint="c.pth", config="x.py")
    qlora = {"format": QLORA_FORMAT, "float": Detector(7).state_dict(), "quantized": {}, "checksums": {}}
    with pytest.raises(CheckpointError, match="trained for 7 classes"):
        check_state_fits(Detector(5), qlora, checkpoint="c.pth", config="x.py")
    wider = Detector(5, width=4).state_dict()
    with pytest.raises(CheckpointError, match=r"does not fit.*rpn_head.reg_head.weight: checkpoint \(2, 4, 3\)"):
        check_state_fits(Detector(5), wider, checkpoint="c.pth", config="x.py")


def test_ema_weights_are_preferred_and_missing_ones_fall_back(tmp_path):
    both = {"epoch": 3, "state_dict": {"module.w": torch.zeros(1)}, "state_dict_ema": {"module.w": torch.ones(1)}}
    torch.save(both, tmp_path / "both.pth")
    state, key, epoch = read_model_state(str(tmp_path / "both.pth"), use_ema=True)
    assert (key, epoch, state["w"].item()) == ("state_dict_ema", 3, 1.0)
    assert read_model_state(str(tmp_path / "both.pth"), use_ema=False)[0]["w"].item() == 0.0
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "plain.pth")
    with warnings_of("opentad.utils.checkpoint") as records:  # model_weights falls back and warns
        assert read_model_state(str(tmp_path / "plain.pth"), use_ema=True)[1] == "state_dict"
    assert "no EMA weights" in " ".join(r.getMessage() for r in records)
    torch.save({"w": torch.zeros(1)}, tmp_path / "bare.pth")
    assert read_model_state(str(tmp_path / "bare.pth"), use_ema=False)[1] == "(file)"
