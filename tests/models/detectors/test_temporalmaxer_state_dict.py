"""Upstream OpenTAD TemporalMaxer checkpoints load with no missing or unexpected key.

The expected names and shapes are written out from upstream's module structure
(opentad/models/{projections/temporalmaxer_proj,necks/fpn,dense_heads/temporalmaxer_head}.py upstream):

* ``projection.embed.{i}``: ConvModule with LN -> ``conv.weight`` (no bias), ``norm.{weight,bias}``;
  the max-pooling branch and the dropout have no parameters, the SimOTA assigner is no module
* ``neck.fpn_norms.{0..5}``: LayerNorm (the base and Multi-THUMOS), nothing for THUMOS14's
  ``GN(num_groups=4, affine=False)``
* ``rpn_head``: buffer ``loss_normalizer``, ``{cls,reg}_convs.{0,1}`` (ConvModule with LN),
  ``cls_head`` / ``reg_head`` (k=3 convs), ``scale.{0..5}.scale``
"""
import os

import pytest
import torch

from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

C = 512
CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "configs", "temporalmaxer")


def upstream_shapes(in_channels, num_embed, num_classes, neck_ln):
    shapes = {"projection.embed.0.conv.weight": (C, in_channels, 3)}
    for i in range(1, num_embed):
        shapes[f"projection.embed.{i}.conv.weight"] = (C, C, 3)
    for i in range(num_embed):
        shapes[f"projection.embed.{i}.norm.weight"] = (C,)
        shapes[f"projection.embed.{i}.norm.bias"] = (C,)
    for i in range(6):
        if neck_ln:
            shapes[f"neck.fpn_norms.{i}.weight"] = (C,)
            shapes[f"neck.fpn_norms.{i}.bias"] = (C,)
        shapes[f"rpn_head.scale.{i}.scale"] = ()
    shapes["rpn_head.loss_normalizer"] = ()
    for tower in ("cls_convs", "reg_convs"):
        for i in range(2):
            shapes[f"rpn_head.{tower}.{i}.conv.weight"] = (C, C, 3)
            shapes[f"rpn_head.{tower}.{i}.norm.weight"] = (C,)
            shapes[f"rpn_head.{tower}.{i}.norm.bias"] = (C,)
    shapes["rpn_head.cls_head.weight"] = (num_classes, C, 3)
    shapes["rpn_head.cls_head.bias"] = (num_classes,)
    shapes["rpn_head.reg_head.weight"] = (2, C, 3)
    shapes["rpn_head.reg_head.bias"] = (2,)
    return shapes


@pytest.mark.parametrize("config,expected", [
    ("thumos_i3d.py", dict(in_channels=2048, num_embed=2, num_classes=20, neck_ln=False)),
    ("multithumos_i3d.py", dict(in_channels=2048, num_embed=3, num_classes=65, neck_ln=True)),
    ("multithumos_i3d_rgb.py", dict(in_channels=1024, num_embed=3, num_classes=65, neck_ln=True)),
])
def test_upstream_names_and_shapes_load_strictly(config, expected):
    model = build(load_config(os.path.join(CONFIGS, config)).model.to_dict(), DETECTORS)
    shapes = upstream_shapes(**expected)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(ours) == set(shapes), (sorted(set(ours) - set(shapes)), sorted(set(shapes) - set(ours)))
    assert ours == shapes

    torch.manual_seed(0)
    checkpoint = {k: torch.randn(shape) for k, shape in shapes.items()}
    checkpoint["rpn_head.loss_normalizer"] = torch.tensor(61.5)  # a trained model's running value
    result = model.load_state_dict(checkpoint, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in model.state_dict().items():
        assert torch.equal(value, checkpoint[key]), key
