"""Parameter groups of build_optimizer on a toy detector: which parameter gets which lr / weight decay."""
import pytest
import torch
import torch.nn as nn

from opentad.cores.optimizer import build_optimizer, check_optimizer_section
from opentad.models.detectors.base import BaseDetector
from opentad.registry import ConfigError
from opentad.utils.config import check_config


class ToyBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(4, 4)  # "rest" (unless excluded)
        self.blocks = nn.ModuleList([nn.ModuleDict({"adapter": nn.Linear(4, 4), "norm": nn.LayerNorm(4)})])
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def toy_detector(with_backbone=True):
    projection = nn.Sequential(nn.Conv1d(4, 4, 3), nn.LayerNorm(4))
    head = nn.Linear(4, 2)
    return BaseDetector(backbone=ToyBackbone() if with_backbone else None, projection=projection, rpn_head=head)


def groups_by_name(model, optimizer):
    """{parameter name: (lr, weight_decay)} read back from the optimizer; each parameter at most once."""
    names = {id(p): n for n, p in model.named_parameters()}
    found = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            name = names[id(p)]
            assert name not in found, f"{name} is in two groups"
            found[name] = (group["lr"], group["weight_decay"])
    return found


def test_paramwise_with_backbone_custom_and_exclude():
    model = toy_detector()
    cfg = dict(
        type="AdamW", lr=1e-3, weight_decay=0.05, paramwise=True,
        backbone=dict(lr=1e-5, weight_decay=1e-4, custom=[dict(name="adapter", lr=2e-4, weight_decay=0.01)],
                      exclude=["blocks"]),
    )
    optimizer = build_optimizer(cfg, model)
    assert isinstance(optimizer, torch.optim.AdamW)
    expected = {
        # backbone: the adapter matches custom (wins over exclude "blocks"), the norm is excluded,
        # the stem is "rest", the frozen layer never enters
        "backbone.stem.weight": (1e-5, 1e-4),
        "backbone.stem.bias": (1e-5, 1e-4),
        "backbone.blocks.0.adapter.weight": (2e-4, 0.01),
        "backbone.blocks.0.adapter.bias": (2e-4, 0.01),
        # detector: conv / linear weights decay, biases and norms do not
        "projection.0.weight": (1e-3, 0.05),
        "projection.0.bias": (1e-3, 0.0),
        "projection.1.weight": (1e-3, 0.0),
        "projection.1.bias": (1e-3, 0.0),
        "rpn_head.weight": (1e-3, 0.05),
        "rpn_head.bias": (1e-3, 0.0),
    }
    assert groups_by_name(model, optimizer) == expected
    assert cfg["backbone"]["custom"][0]["name"] == "adapter" and "paramwise" in cfg  # config untouched


def test_not_paramwise_one_detector_group_with_defaults():
    model = toy_detector(with_backbone=False)
    model.rpn_head.bias.requires_grad_(False)
    optimizer = build_optimizer(dict(type="SGD", lr=0.1, weight_decay=0.5, momentum=0.9), model)
    found = groups_by_name(model, optimizer)
    assert found == {n: (0.1, 0.5) for n, p in model.named_parameters() if p.requires_grad}
    assert "rpn_head.bias" not in found
    assert optimizer.param_groups[0]["momentum"] == 0.9


def test_trainable_backbone_needs_backbone_entry():
    with pytest.raises(ConfigError, match="backbone"):
        build_optimizer(dict(type="AdamW", lr=1e-3, weight_decay=0.05, paramwise=True), toy_detector())


def test_frozen_backbone_is_left_out():
    model = toy_detector()
    model.backbone.requires_grad_(False)
    optimizer = build_optimizer(dict(type="AdamW", lr=1e-3, weight_decay=0.05, paramwise=True), model)
    assert not any(n.startswith("backbone") for n in groups_by_name(model, optimizer))


def test_section_checker_reports_typos():
    errors = check_optimizer_section(
        dict(type="AdamW", lr=1e-3, weight_decy=0.05, backbone=dict(lr=0, weight_decay=0, custm=[])), "optimizer"
    )
    joined = "\n".join(errors)
    assert "weight_decy" in joined and "custm" in joined
    assert check_optimizer_section(dict(type="AdamWW", lr=1e-3), "optimizer")
    backbone = dict(lr=0, weight_decay=0, custom=[dict(name="a", lr=1)])
    bad_custom = dict(type="AdamW", lr=1, weight_decay=0, backbone=backbone)
    assert "weight_decay" in "\n".join(check_optimizer_section(bad_custom, "optimizer"))
    # the generic config walk goes through the same checker
    assert any("weight_decy" in e for e in check_config(dict(optimizer=dict(type="AdamW", weight_decy=1))))


def test_build_rejects_typo_before_building():
    with pytest.raises(ConfigError, match="betass"):
        build_optimizer(dict(type="AdamW", lr=1e-3, betass=(0.9, 0.99)), toy_detector(with_backbone=False))


def test_a_float_run_imports_neither_bitsandbytes_nor_torchvision():
    """Building a feature detector and its AdamW must not import bitsandbytes (through ``mmengine.optim``) or
    torchvision (through the frame transforms): each costs seconds of CPU in every process. Other optimizer
    names still resolve, through ``mmengine.optim``."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        "import sys\n"
        "from opentad.registry import DETECTORS, OPTIMIZERS, build\n"
        "from opentad.utils.config import load_config\n"
        "from opentad.cores.optimizer import build_optimizer\n"
        "cfg = load_config('configs/actionformer/thumos_i3d.py')\n"
        "model = build(cfg.model, DETECTORS)\n"
        "build_optimizer(dict(type='AdamW', lr=1e-4, weight_decay=0.05, paramwise=True), model)\n"
        "print(sorted(m for m in ('bitsandbytes', 'torchvision', 'mmengine.optim') if m in sys.modules))\n"
        "print(OPTIMIZERS.get('Adam') is __import__('torch').optim.Adam)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=root))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["[]", "True"], out.stdout
