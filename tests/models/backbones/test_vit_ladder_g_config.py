"""configs/adatad/thumos/e2e_thumos_videomaev2_g_768x2_224_side_2e-4.py builds upstream's side-tuned VideoMAEv2-g.

Built on the meta device (no memory, no weights; ``custom.pretrain=None`` as no checkpoint is
here). Upstream's recipe: the 40-block g ViT (width 1408) frozen, side adapters on blocks 20..39
with hidden width ``int(1408 / 8) = 176``; per adapter (upstream names
``ladders.adapters.{i}.{down_proj,up_proj,dwconv,conv,gamma}``):
down 1408 -> 176 (+ bias), up 176 -> 1408 (+ bias), depthwise conv 176 x 1 x 3 (+ bias),
1x1 conv 176 -> 176 (+ bias), gamma (1).
"""
import os

import torch

from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONFIG = os.path.join(ROOT, "configs", "adatad", "thumos", "e2e_thumos_videomaev2_g_768x2_224_side_2e-4.py")
DIMS, HIDDEN = 1408, 176
PREFIX = "backbone.model.backbone."


def _adapter_shapes(i):
    p = f"{PREFIX}ladders.adapters.{i}."
    return {p + "down_proj.weight": (HIDDEN, DIMS), p + "down_proj.bias": (HIDDEN,),
            p + "up_proj.weight": (DIMS, HIDDEN), p + "up_proj.bias": (DIMS,),
            p + "dwconv.weight": (HIDDEN, 1, 3), p + "dwconv.bias": (HIDDEN,),
            p + "conv.weight": (HIDDEN, HIDDEN, 1), p + "conv.bias": (HIDDEN,), p + "gamma": (1,)}


def test_side_g_config_builds_upstreams_ladder():
    cfg = load_config(CONFIG, {"model.backbone.custom.pretrain": None})
    assert cfg.optimizer.backbone.custom == [dict(name="adapter", lr=2e-4, weight_decay=0.05)]
    with torch.device("meta"):
        model = build(cfg.model.to_dict(), DETECTORS)
    vit = model.backbone.model.backbone
    assert type(vit).__name__ == "VisionTransformerLadder" and len(vit.blocks) == 40
    assert vit.adapter_index == list(range(20, 40))
    state = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ladder = {k: s for k, s in state.items() if k.startswith(PREFIX + "ladders.")}
    expected = {}
    for i in range(20):
        expected.update(_adapter_shapes(i))
    assert ladder == expected
    # only the side network trains in the backbone; the whole detector head trains
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    backbone_trainable = {n for n in trainable if n.startswith("backbone.")}
    assert backbone_trainable == {k for k in expected}
    assert all(n in trainable for n, _ in model.named_parameters() if not n.startswith("backbone."))
    assert state["projection.embed.0.conv.weight"] == (512, DIMS, 3)
