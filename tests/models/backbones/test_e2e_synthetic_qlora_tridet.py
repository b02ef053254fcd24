"""End to end: TriDet's projection and head on the QLoRA-AdaTAD backbone (the QLoRA backbone is not tied to
ActionFormer).

configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora_tridet.py is built (the pretrained file replaced by
the random tiny ViT: pretraining is tests/apis/test_synthetic_pretrain.py's business) and trained a few
iterations on one batch of tiny synthetic videos with the config's optimizer: the loss is finite and
falls, the adapters, the LoRA layers and every TriDet part get gradients, and the frozen (NF4) ViT gets
none and does not move.
"""
import math
import os

import pytest
import torch

from opentad.cores.optimizer import build_optimizer
from opentad.datasets.builder import build_dataset, collate
from opentad.models.utils.qlora import quantized_tensors
from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONFIG = os.path.join(ROOT, "configs", "adatad", "synthetic", "e2e_synthetic_vit_tiny_qlora_tridet.py")
STEPS = 4


@pytest.fixture
def tiny_videos(tmp_path):
    from opentad.datasets.synthetic import generate_dataset, settings_from_preset

    settings = settings_from_preset(
        "default",
        dict(num_train=2, num_test=1, num_classes=2, min_duration=4.0, max_duration=5.0, max_action=2.0,
             median_action=1.0, min_action=0.5),
    )
    generate_dataset(settings, os.path.join(str(tmp_path), "data", "synthetic-thumos"))
    return tmp_path


def _trainable_groups(model):
    groups = {"adapter": [], "lora": [], "head": [], "other_backbone": []}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if not name.startswith("backbone."):
            groups["head"].append(name)
        elif ".adapter." in name:
            groups["adapter"].append(name)
        elif "lora" in name:
            groups["lora"].append(name)
        else:
            groups["other_backbone"].append(name)
    return groups


def test_tridet_on_the_qlora_backbone_trains(tiny_videos, monkeypatch):
    monkeypatch.chdir(tiny_videos)
    cfg = load_config(CONFIG)
    assert cfg.model.type == "TriDet" and cfg.model.backbone.backbone.type == "VisionTransformerQLoRA"
    model_cfg = cfg.model.to_dict()
    model_cfg["backbone"]["custom"]["pretrain"] = None
    model_cfg["rpn_head"]["num_classes"] = 2
    torch.manual_seed(0)
    model = build(model_cfg, DETECTORS).train()
    dataset = build_dataset(cfg.dataset.train.to_dict())
    batch = collate([dataset[0]])
    optimizer = build_optimizer(cfg.optimizer.to_dict(), model)

    groups = _trainable_groups(model)
    assert groups["adapter"] and groups["lora"] and not groups["other_backbone"], groups["other_backbone"]
    head_parts = {name.split(".")[0] + "." + name.split(".")[1] for name in groups["head"]}
    assert {"rpn_head.cls_start_convs", "rpn_head.cls_end_head", "rpn_head.reg_head", "projection.stem"} <= head_parts
    frozen_before = {k: v.clone() for k, v in quantized_tensors(model.backbone).items()}
    assert frozen_before  # the ViT is NF4-quantized
    frozen_float = {n: p.detach().clone() for n, p in model.backbone.named_parameters() if not p.requires_grad}

    losses = []
    for step in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        cost = model(**batch, return_loss=True)["cost"]
        assert math.isfinite(cost.item()), cost
        cost.backward()
        params = dict(model.named_parameters())
        if step == 0:  # lora_b and the adapters' up projections start at 0: at first only the lora_b layers
            # of the ViT and of the adapters' up projections get gradients
            for name in groups["lora"] + groups["adapter"]:
                if "lora_b" in name and ".adapter.down_proj." not in name:
                    assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name
            for part in ("rpn_head.cls_head.weight", "rpn_head.reg_head.weight", "rpn_head.cls_start_head.weight",
                         "rpn_head.cls_end_head.weight", "projection.embed.0.conv.weight", "neck.fpn_norms.0.weight"):
                assert params[part].grad is not None and params[part].grad.abs().sum() > 0, part
            assert all(p.grad is None for p in model.backbone.parameters() if not p.requires_grad)
        if step == STEPS - 1:  # then every adapter and LoRA tensor
            for name in groups["adapter"] + groups["lora"]:
                assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name
        optimizer.step()
        losses.append(cost.item())
    assert losses[-1] < losses[0], losses
    for key, value in quantized_tensors(model.backbone).items():
        assert torch.equal(value, frozen_before[key]), key
    for name, param in model.backbone.named_parameters():
        if name in frozen_float:
            assert torch.equal(param, frozen_float[name]), name
