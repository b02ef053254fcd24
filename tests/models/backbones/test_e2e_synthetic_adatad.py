"""End to end: the synthetic AdaTAD config trains two epochs from raw videos through the engine.

Tiny data (4 training and 2 test videos of 4-6 s, 2 classes), the config's
own model and pipelines; checks that training and evaluation run, that the
checkpoint holds upstream's key names, and that the adapters moved while
the ViT stayed frozen.
"""
import glob
import os

import pytest
import torch

from opentad.cores.runner import train

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONFIG = os.path.join(ROOT, "configs", "adatad", "synthetic", "e2e_synthetic_vit_tiny_adapter.py")


@pytest.fixture
def tiny_videos(tmp_path):
    from opentad.datasets.synthetic import generate_dataset, settings_from_preset

    settings = settings_from_preset(
        "default",
        dict(num_train=4, num_test=2, num_classes=2, min_duration=4.0, max_duration=6.0, max_action=2.0,
             median_action=1.0, min_action=0.5),
    )
    generate_dataset(settings, os.path.join(str(tmp_path), "data", "synthetic-thumos"))
    return tmp_path


def test_synthetic_adatad_config_trains_two_epochs(tiny_videos, monkeypatch):
    monkeypatch.chdir(tiny_videos)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    work_dir = tiny_videos / "exps"
    metrics = train([
        CONFIG, "--cfg-options", f"work_dir={work_dir}", "workflow.end_epoch=2", "workflow.val_eval_interval=2",
        "workflow.checkpoint_interval=1", "model.rpn_head.num_classes=2",
    ])
    assert metrics is not None and 0.0 <= metrics["mAP@0.5"] <= 1.0, metrics
    checkpoints = sorted(glob.glob(str(work_dir / "**" / "epoch_*.pth"), recursive=True))
    assert len(checkpoints) == 2, checkpoints
    states = [torch.load(p, map_location="cpu", weights_only=False)["state_dict"] for p in checkpoints]
    first, last = ({k.removeprefix("module."): v for k, v in state.items()} for state in states)
    adapter = "backbone.model.backbone.blocks.0.adapter.up_proj.weight"
    vit = "backbone.model.backbone.blocks.3.mlp.layers.0.0.weight"
    assert not torch.equal(first[adapter], last[adapter])  # the adapters train
    assert torch.equal(first[vit], last[vit])  # the ViT is frozen
