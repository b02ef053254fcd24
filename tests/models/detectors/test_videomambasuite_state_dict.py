"""Upstream OpenTAD CausalTAD and VideoMambaSuite checkpoints load with no missing or unexpected key.

Names and shapes written out from upstream's module structure (opentad/models/projections/
{causal_proj,mamba_proj}.py upstream, video-mamba-suite's mamba_ssm/modules/mamba_new.py), for the
THUMOS-14 models: width C = 512, arch (2, 2, 5), 6 levels, 20 classes, 2 head convs,
d_state 16, dt_rank ceil(C / 16) = 32, conv kernel 4:

* ``projection.embed.{0,1}``: ConvModule with LN -> ``conv.weight`` (no bias), ``norm.{weight,bias}``
* CausalProj ``{stem.0-1, branch.0-4}``: ``norm`` (LayerNorm), ``drop_path.scale`` (1, C, 1),
  ``block``: MixtureCausalBlock with d_inner = 2 C: ``in_proj`` (8 d_inner, C), ``conv1d`` (depthwise,
  bias), ``x_proj`` (dt_rank + 32, d_inner), ``dt_proj`` (d_inner, dt_rank) + bias, ``A_log``
  (d_inner, 16), ``D``, ``qkv`` (3 d_inner, 1, 3) + bias, ``out_proj`` (C, 4 d_inner)
* MambaProj (DBM, expand 1, d_inner = C): ``mamba``: ``in_proj`` (4 C, C), ``conv1d``, ``x_proj``,
  ``dt_proj``, ``A_log``, ``D``, ``out_proj`` (C, 2 C); ``norm``, ``drop_path.scale``
* ``neck.fpn_norms.{0..5}``, ``rpn_head`` as ActionFormer's (test_actionformer_state_dict.py)
"""
import os

import pytest
import torch

from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config
from tests.models.detectors.test_actionformer_state_dict import upstream_thumos_i3d_shapes

C, RANK, N = 512, 32, 16
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")


def _ssm(prefix, d_inner):
    return {
        f"{prefix}.conv1d.weight": (d_inner, 1, 4),
        f"{prefix}.conv1d.bias": (d_inner,),
        f"{prefix}.x_proj.weight": (RANK + 2 * N, d_inner),
        f"{prefix}.dt_proj.weight": (d_inner, RANK),
        f"{prefix}.dt_proj.bias": (d_inner,),
        f"{prefix}.A_log": (d_inner, N),
        f"{prefix}.D": (d_inner,),
    }


def _causal_block(prefix):
    d = 2 * C
    shapes = {f"{prefix}.norm.weight": (C,), f"{prefix}.norm.bias": (C,), f"{prefix}.drop_path.scale": (1, C, 1)}
    shapes.update(_ssm(f"{prefix}.block", d))
    shapes[f"{prefix}.block.in_proj.weight"] = (8 * d, C)
    shapes[f"{prefix}.block.qkv.weight"] = (3 * d, 1, 3)
    shapes[f"{prefix}.block.qkv.bias"] = (3 * d,)
    shapes[f"{prefix}.block.out_proj.weight"] = (C, 4 * d)
    return shapes


def _mamba_block(prefix):
    shapes = {f"{prefix}.norm.weight": (C,), f"{prefix}.norm.bias": (C,), f"{prefix}.drop_path.scale": (1, C, 1)}
    shapes.update(_ssm(f"{prefix}.mamba", C))
    shapes[f"{prefix}.mamba.in_proj.weight"] = (4 * C, C)
    shapes[f"{prefix}.mamba.out_proj.weight"] = (C, 2 * C)
    return shapes


def upstream_shapes(block, in_channels):
    shapes = {k: v for k, v in upstream_thumos_i3d_shapes().items() if not k.startswith(("projection.stem", "projection.branch"))}
    shapes["projection.embed.0.conv.weight"] = (C, in_channels, 3)
    for i in range(2):
        shapes.update(block(f"projection.stem.{i}"))
    for i in range(5):
        shapes.update(block(f"projection.branch.{i}"))
    return shapes


@pytest.mark.parametrize(
    "config, block, in_channels",
    [
        ("configs/causaltad/thumos_i3d.py", _causal_block, 2048),
        ("configs/videomambasuite/thumos_internvideo6b.py", _mamba_block, 3200),
    ],
)
def test_upstream_checkpoint_loads_strictly(config, block, in_channels):
    model = build(load_config(os.path.join(ROOT, config))["model"], DETECTORS)
    expected = upstream_shapes(block, in_channels)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected
    checkpoint = {k: torch.full(shape, 0.5) for k, shape in expected.items()}
    report = model.load_state_dict(checkpoint, strict=True)
    assert not report.missing_keys and not report.unexpected_keys
    assert all(torch.equal(v, torch.full_like(v, 0.5)) for v in model.state_dict().values())
