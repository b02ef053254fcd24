"""End to end: configs/actionformer/synthetic_features.py trained briefly on freshly generated synthetic features.

Guards the learning floor: after 10 epochs (scheduler.max_epoch=10, one process, CPU) the
test split's mAP@0.5 must reach MAP50_FLOOR. Calibration (docs/benchmarks.md, "Training engines"):
this run measured 0.886; the full recipe (20 epochs, two processes) measured 0.956.
"""
import os

import pytest

from opentad.cores.runner import train

pytestmark = pytest.mark.slow

MAP50_FLOOR = 0.7
CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "configs", "actionformer", "synthetic_features.py")


def test_synthetic_features_recipe_learns(tmp_path, monkeypatch, synthetic_data):
    synthetic_data(tmp_path)  # the default settings, features only
    monkeypatch.chdir(tmp_path)
    metrics = train([
        CONFIG, "--cfg-options", f"work_dir={tmp_path / 'exps'}", "scheduler.max_epoch=10",
        "workflow.val_loss_interval=-1", "workflow.val_eval_interval=10",
    ])
    assert metrics["mAP@0.5"] >= MAP50_FLOOR, metrics
