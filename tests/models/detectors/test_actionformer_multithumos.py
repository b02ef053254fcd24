"""Upstream's Multi-THUMOS ActionFormer checkpoints load strictly into the models of the Multi-THUMOS configs.

Upstream OpenTAD's configs/actionformer/multithumos_i3d{,_rgb}.py change the THUMOS model to
``arch=(3, 0, 5)`` (three embedding convs, no stem block, five branch blocks) and 65
classes; the rgb variant reads 1024 channels. From upstream's module structure
(``Conv1DTransformerProj``, ``FPNIdentity``, ``ActionFormerHead``), a checkpoint holds:

* ``projection.embed.{0,1,2}``: ConvModule with LN -> ``conv.weight`` ``[512, C_in or 512, 3]`` (no bias),
  ``norm.{weight,bias}``; nothing under ``projection.stem``
* ``projection.branch.{0..4}``: TransformerBlock (LN, depthwise q/k/v convs with LN, 1x1 q/k/v/proj,
  MLP 512 -> 2048 -> 512, the two drop-path scales)
* ``neck.fpn_norms.{0..5}``, ``rpn_head.scale.{0..5}.scale``, ``rpn_head.loss_normalizer``, the two
  towers of 2 ConvModules, ``cls_head`` ``[65, 512, 3]``, ``reg_head`` ``[2, 512, 3]``
"""
import os

import pytest
import torch

from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
C, HIDDEN, CLASSES, LEVELS = 512, 2048, 65, 6


def _transformer_block(prefix):
    shapes = {f"{prefix}.{ln}.{p}": (C,) for ln in ("ln1", "ln2") for p in ("weight", "bias")}
    for name in ("query", "key", "value"):
        shapes[f"{prefix}.attn.{name}_conv.conv.weight"] = (C, 1, 3)
        shapes.update({f"{prefix}.attn.{name}_norm.{p}": (C,) for p in ("weight", "bias")})
    for name in ("query", "key", "value", "proj"):
        shapes.update({f"{prefix}.attn.{name}.weight": (C, C, 1), f"{prefix}.attn.{name}.bias": (C,)})
    shapes.update({f"{prefix}.mlp.0.weight": (HIDDEN, C, 1), f"{prefix}.mlp.0.bias": (HIDDEN,),
                   f"{prefix}.mlp.3.weight": (C, HIDDEN, 1), f"{prefix}.mlp.3.bias": (C,),
                   f"{prefix}.drop_path_attn.scale": (1, C, 1), f"{prefix}.drop_path_mlp.scale": (1, C, 1)})
    return shapes


def upstream_multithumos_shapes(in_channels):
    shapes = {}
    for i in range(3):
        shapes[f"projection.embed.{i}.conv.weight"] = (C, in_channels if i == 0 else C, 3)
        shapes.update({f"projection.embed.{i}.norm.{p}": (C,) for p in ("weight", "bias")})
    for i in range(5):
        shapes.update(_transformer_block(f"projection.branch.{i}"))
    for i in range(LEVELS):
        shapes.update({f"neck.fpn_norms.{i}.{p}": (C,) for p in ("weight", "bias")})
        shapes[f"rpn_head.scale.{i}.scale"] = ()
    shapes["rpn_head.loss_normalizer"] = ()
    for tower in ("cls_convs", "reg_convs"):
        for i in range(2):
            shapes[f"rpn_head.{tower}.{i}.conv.weight"] = (C, C, 3)
            shapes.update({f"rpn_head.{tower}.{i}.norm.{p}": (C,) for p in ("weight", "bias")})
    shapes.update({"rpn_head.cls_head.weight": (CLASSES, C, 3), "rpn_head.cls_head.bias": (CLASSES,),
                   "rpn_head.reg_head.weight": (2, C, 3), "rpn_head.reg_head.bias": (2,)})
    return shapes


@pytest.mark.parametrize("config, in_channels", [("multithumos_i3d.py", 2048), ("multithumos_i3d_rgb.py", 1024)])
def test_upstream_checkpoint_loads_strictly(config, in_channels):
    model = build(load_config(os.path.join(ROOT, "configs", "actionformer", config)).model.to_dict(), DETECTORS)
    expected = upstream_multithumos_shapes(in_channels)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(ours) == set(expected), (sorted(set(ours) - set(expected)), sorted(set(expected) - set(ours)))
    assert ours == expected
    torch.manual_seed(0)
    checkpoint = {k: torch.randn(shape) for k, shape in expected.items()}
    result = model.load_state_dict(checkpoint, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert all(torch.equal(v, checkpoint[k]) for k, v in model.state_dict().items())
