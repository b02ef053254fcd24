"""Upstream OpenTAD ActionFormer checkpoints load with no missing or unexpected key.

The expected names and shapes are written out from upstream's module structure
for the THUMOS-14 I3D model (configs/actionformer/thumos_i3d.py upstream:
in_channels 2048, width 512, arch (2, 2, 5), window 19, path_pdrop 0.1,
6 levels, 20 classes, 2 head convs):

* ``projection.embed.{0,1}``: ConvModule with LN -> ``conv.weight`` (no bias), ``norm.{weight,bias}``
* ``projection.stem.{0,1}`` and ``projection.branch.{0..4}``: TransformerBlock ->
  ``ln1``, ``ln2``, ``attn.{query,key,value}_conv.conv.weight`` (depthwise, no bias),
  ``attn.{query,key,value}_norm``, ``attn.{query,key,value,proj}`` (1x1 convs),
  ``mlp.0`` / ``mlp.3`` (1x1 convs), ``drop_path_attn.scale`` / ``drop_path_mlp.scale``
* ``neck.fpn_norms.{0..5}``: LayerNorm
* ``rpn_head``: buffer ``loss_normalizer``, ``{cls,reg}_convs.{0,1}`` (ConvModule with LN),
  ``cls_head`` / ``reg_head`` (k=3 convs), ``scale.{0..5}.scale``
"""
import os

import torch

from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

C, C_IN, HIDDEN, CLASSES = 512, 2048, 2048, 20
BASE_CONFIG = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "configs", "_base_", "models", "actionformer.py"
)


def _block(prefix):
    shapes = {}
    for ln in ("ln1", "ln2"):
        shapes[f"{prefix}.{ln}.weight"] = (C,)
        shapes[f"{prefix}.{ln}.bias"] = (C,)
    for name in ("query", "key", "value"):
        shapes[f"{prefix}.attn.{name}_conv.conv.weight"] = (C, 1, 3)  # kernel 3 with stride 1 and with stride 2
        shapes[f"{prefix}.attn.{name}_norm.weight"] = (C,)
        shapes[f"{prefix}.attn.{name}_norm.bias"] = (C,)
    for name in ("query", "key", "value", "proj"):
        shapes[f"{prefix}.attn.{name}.weight"] = (C, C, 1)
        shapes[f"{prefix}.attn.{name}.bias"] = (C,)
    shapes[f"{prefix}.mlp.0.weight"] = (HIDDEN, C, 1)
    shapes[f"{prefix}.mlp.0.bias"] = (HIDDEN,)
    shapes[f"{prefix}.mlp.3.weight"] = (C, HIDDEN, 1)
    shapes[f"{prefix}.mlp.3.bias"] = (C,)
    shapes[f"{prefix}.drop_path_attn.scale"] = (1, C, 1)
    shapes[f"{prefix}.drop_path_mlp.scale"] = (1, C, 1)
    return shapes


def upstream_thumos_i3d_shapes():
    shapes = {
        "projection.embed.0.conv.weight": (C, C_IN, 3),
        "projection.embed.1.conv.weight": (C, C, 3),
    }
    for i in range(2):
        shapes[f"projection.embed.{i}.norm.weight"] = (C,)
        shapes[f"projection.embed.{i}.norm.bias"] = (C,)
    for i in range(2):
        shapes.update(_block(f"projection.stem.{i}"))
    for i in range(5):
        shapes.update(_block(f"projection.branch.{i}"))
    for i in range(6):
        shapes[f"neck.fpn_norms.{i}.weight"] = (C,)
        shapes[f"neck.fpn_norms.{i}.bias"] = (C,)
        shapes[f"rpn_head.scale.{i}.scale"] = ()
    shapes["rpn_head.loss_normalizer"] = ()
    for tower in ("cls_convs", "reg_convs"):
        for i in range(2):
            shapes[f"rpn_head.{tower}.{i}.conv.weight"] = (C, C, 3)
            shapes[f"rpn_head.{tower}.{i}.norm.weight"] = (C,)
            shapes[f"rpn_head.{tower}.{i}.norm.bias"] = (C,)
    shapes["rpn_head.cls_head.weight"] = (CLASSES, C, 3)
    shapes["rpn_head.cls_head.bias"] = (CLASSES,)
    shapes["rpn_head.reg_head.weight"] = (2, C, 3)
    shapes["rpn_head.reg_head.bias"] = (2,)
    return shapes


def _thumos_i3d_model():
    cfg = load_config(BASE_CONFIG)
    model_cfg = cfg.model.to_dict()
    model_cfg["projection"]["input_pdrop"] = 0.2  # what thumos_i3d.py adds upstream (no parameters)
    return build(model_cfg, DETECTORS)


def test_upstream_names_and_shapes_load_strictly():
    expected = upstream_thumos_i3d_shapes()
    model = _thumos_i3d_model()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(ours) == set(expected), (sorted(set(ours) - set(expected)), sorted(set(expected) - set(ours)))
    assert ours == expected

    torch.manual_seed(0)
    checkpoint = {k: torch.randn(shape) for k, shape in expected.items()}
    checkpoint["rpn_head.loss_normalizer"] = torch.tensor(87.25)  # a trained model's running value
    result = model.load_state_dict(checkpoint, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in model.state_dict().items():
        assert torch.equal(value, checkpoint[key]), key


def test_global_attention_variant_has_the_same_names():
    # AdaTAD's THUMOS configs set n_mha_win_size=-1 (global attention) and max_seq_len=768
    cfg = load_config(BASE_CONFIG).model.to_dict()
    cfg["projection"].update(in_channels=384, max_seq_len=768, attn_cfg=dict(n_head=4, n_mha_win_size=-1))
    model = build(cfg, DETECTORS)
    expected = upstream_thumos_i3d_shapes()
    expected["projection.embed.0.conv.weight"] = (C, 384, 3)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
