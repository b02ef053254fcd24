"""A video backbone built on its own trains exactly what it trains inside a built detector.

Upstream freezes in ``forward``; here :meth:`freeze` runs at construction (and
again, idempotently, in the backbone wrapper after the weights are loaded and,
for QLoRA, quantized). The reference is the detector built from the synthetic
recipes (``configs/adatad/synthetic``) through the registry.
"""
import copy
import os

import pytest
import torch

from opentad.models.backbones import VisionTransformerAdapter, VisionTransformerQLoRA
from opentad.registry import BACKBONES, DETECTORS, build
from opentad.utils.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SYNTHETIC = os.path.join(ROOT, "configs", "adatad", "synthetic")
PREFIX = "backbone.model.backbone."  # detector -> BackboneWrapper -> VideoRecognizer -> the ViT


def _model_cfg(name, **backbone_overrides):
    model = load_config(os.path.join(SYNTHETIC, name)).model.to_dict()
    model["backbone"]["backbone"].update(backbone_overrides)
    return model


def _trainable(module, prefix=""):
    return {n[len(prefix):] for n, p in module.named_parameters() if p.requires_grad and n.startswith(prefix)}


def _in_detector(model_cfg):
    torch.manual_seed(0)
    return _trainable(build(model_cfg, DETECTORS), PREFIX)


def _grads_reach_exactly_the_trainable(backbone):
    """One backward through the standalone backbone in train mode; the parameters with a gradient."""
    torch.manual_seed(1)
    with torch.no_grad():  # non-zero up projections / LoRA B, so that no gradient is zero by construction
        for name, param in backbone.named_parameters():
            if param.requires_grad and ("lora_b" in name or "up_proj" in name):
                param.normal_(std=0.02)
    backbone.train()
    frames = torch.randn(8, 3, 16, 64, 64)  # 8 clips of 16 frames: one video of total_frames=128
    backbone(frames).float().pow(2).mean().backward()
    return {n for n, p in backbone.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name, overrides", [
    ("e2e_synthetic_vit_tiny_adapter.py", {}),
    ("e2e_synthetic_vit_tiny_qlora.py", dict(quantize_backbone=False, backbone_lora_targets=[])),
])
def test_built_alone_trains_what_the_detector_trains(name, overrides):
    model_cfg = _model_cfg(name, **overrides)
    expected = _in_detector(model_cfg)
    assert expected and all(".adapter." in n for n in expected)  # AdaTAD: only the adapters

    torch.manual_seed(0)
    alone = build(model_cfg["backbone"]["backbone"], BACKBONES)  # no wrapper, no freeze() call
    assert isinstance(alone, VisionTransformerAdapter)
    assert _trainable(alone) == expected
    assert _grads_reach_exactly_the_trainable(alone) == expected
    again = copy.deepcopy(alone)
    again.freeze()  # the wrapper's call changes nothing
    assert _trainable(again) == expected


def test_qlora_with_backbone_lora_after_on_weights_loaded():
    """Backbone LoRA layers appear when the weights are loaded (the wrapper's ``on_weights_loaded``)."""
    model_cfg = _model_cfg("e2e_synthetic_vit_tiny_qlora.py")
    expected = _in_detector(model_cfg)
    assert any(".attn.qkv.lora_a." in n for n in expected)

    torch.manual_seed(0)
    alone = build(model_cfg["backbone"]["backbone"], BACKBONES)
    assert isinstance(alone, VisionTransformerQLoRA)
    assert _trainable(alone) == {n for n in expected if ".adapter." in n}  # before: the adapters' share
    alone.on_weights_loaded()  # quantizes and adds the backbone LoRA, as inside the wrapper
    assert _trainable(alone) == expected
    assert _grads_reach_exactly_the_trainable(alone) == expected


def test_freeze_vit_false_alone_matches_the_detector_too():
    model_cfg = _model_cfg("e2e_synthetic_vit_tiny_adapter.py", freeze_vit=False)
    expected = _in_detector(model_cfg)
    alone = build(model_cfg["backbone"]["backbone"], BACKBONES)
    assert _trainable(alone) == expected
    assert "patch_embed.projection.weight" in expected and "fc_norm.weight" not in expected  # unused with feature maps
