"""Pretraining the synthetic configs' tiny ViT: arguments, what trains, the file, the cache, loading it."""
import logging
import os

import numpy as np
import pytest
import torch

from opentad.apis.synthetic_pretrain import PretrainSettings, cached_digest, pretrain_vit, vit_arguments
from opentad.apis.synthetic_pretrain_loop import _loss
from opentad.datasets.synthetic.clips import IGNORE
from opentad.models.backbones.vit import VisionTransformerCP
from opentad.registry import BACKBONES, build
from opentad.utils.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "adatad", "synthetic", "e2e_synthetic_vit_tiny_qlora_pretrained.py")
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
TINY = PretrainSettings(
    num_videos=2, num_val_videos=1, min_duration=4.0, max_duration=5.0, steps=3, batch_size=2, warmup_steps=1
)


@pytest.fixture(scope="module")
def cfg():
    return load_config(CONFIG)


@pytest.fixture(scope="module")
def pretrained(cfg, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("pretrain") / "vit.pth")
    report = pretrain_vit(
        vit_arguments(cfg.model.backbone.backbone), TINY, frame_stride=4, mean=MEAN, std=STD, out=out, progress=False
    )
    return out, report


def test_vit_arguments_keep_the_plain_vit_keys_only(cfg):
    args = vit_arguments(cfg.model.backbone.backbone)
    for key in ("img_size", "patch_size", "embed_dims", "depth", "num_heads", "num_frames"):
        assert args[key] == cfg.model.backbone.backbone[key]
    for key in ("type", "adapter_index", "lora_r", "quantize_bits", "total_frames", "freeze_vit"):
        assert key not in args
    assert args["return_feat_map"] is True
    VisionTransformerCP(**args)  # binds
    with pytest.raises(KeyError, match="num_frames"):
        vit_arguments({"img_size": 64})


def test_loss_leaves_ignored_labels_out():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [0.0, 3.0, 0.0]]])
    target = np.array([[0, IGNORE, 1]])
    by_hand = -(torch.log_softmax(logits[0, 0], -1)[0] + torch.log_softmax(logits[0, 2], -1)[1]) / 2
    assert torch.allclose(_loss(logits, target), by_hand)


def test_the_file_is_upstreams_layout_and_loads_into_the_qlora_backbone(cfg, pretrained, caplog):
    path, report = pretrained
    assert not report["cached"] and report["val_accuracy"] is not None
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["meta"]["digest"] == report["digest"] == cached_digest(path)
    state = ckpt["state_dict"]
    assert state and all(k.startswith("backbone.") for k in state)
    # into the plain ViT of the config: every key, nothing else
    plain = VisionTransformerCP(**vit_arguments(cfg.model.backbone.backbone))
    assert {"backbone." + k for k in plain.state_dict()} == set(state)
    # into the config's QLoRA backbone through custom.pretrain: only the adapters are left out
    wrapper = cfg.model.backbone.copy()
    wrapper.custom = dict(wrapper.custom, pretrain=path)
    with caplog.at_level(logging.INFO, logger="opentad.models.backbones.pretrained"):
        model = build(wrapper, BACKBONES)
    assert any("0 unexpected" in r.getMessage() and "in new adapters" in r.getMessage() for r in caplog.records)
    own = model.model.state_dict()
    float_keys = [k for k in state if k.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
                  in own or k in own]
    exact = 0
    for key in float_keys:
        mine = own.get(key, own.get(key.replace(".bias", ".base_layer.bias")))
        if mine is not None and mine.is_floating_point() and mine.shape == state[key].shape:
            assert torch.equal(mine.float(), state[key].float()), key
            exact += 1
    assert exact >= 10  # patch embedding, norms and the biases kept in float are the file's, exactly


def test_every_vit_weight_trained_except_the_unused_fc_norm(cfg, pretrained):
    path, _ = pretrained
    args = vit_arguments(cfg.model.backbone.backbone)
    torch.manual_seed(TINY.seed)
    initial = {"backbone." + k: v for k, v in VisionTransformerCP(**args).state_dict().items()}
    trained = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert initial.keys() == trained.keys()
    unchanged = sorted(k for k in initial if torch.equal(initial[k], trained[k]))
    # buffers (the fixed position table) and fc_norm, which return_feat_map never uses, stay
    assert unchanged == ["backbone.fc_norm.bias", "backbone.fc_norm.weight", "backbone.pos_embed"]


def test_a_rerun_is_a_cache_hit_and_other_settings_retrain(cfg, pretrained, tmp_path):
    path, report = pretrained
    args = vit_arguments(cfg.model.backbone.backbone)
    before = os.stat(path).st_mtime_ns
    again = pretrain_vit(args, TINY, frame_stride=4, mean=MEAN, std=STD, out=path, progress=False)
    assert again["cached"] and again["digest"] == report["digest"] and os.stat(path).st_mtime_ns == before
    other = str(tmp_path / "other.pth")
    changed = pretrain_vit(
        args, PretrainSettings(**{**TINY.__dict__, "steps": 2}), frame_stride=4, mean=MEAN, std=STD, out=other,
        progress=False,
    )
    assert not changed["cached"] and changed["digest"] != report["digest"]
    assert cached_digest(str(tmp_path / "absent.pth")) is None
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    assert cached_digest(str(tmp_path / "junk.pth")) is None


def test_settings_are_validated():
    with pytest.raises(ValueError, match="warmup_steps"):
        PretrainSettings(steps=10, warmup_steps=11)
    with pytest.raises(ValueError, match="positive"):
        PretrainSettings(num_videos=0)
