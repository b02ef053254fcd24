"""End to end: configs/temporalmaxer/synthetic_features.py trained briefly on freshly generated synthetic features.

Guards the learning floor of TemporalMaxer (max-pooling pyramid, SimOTA-trained head): after
MAX_EPOCH epochs (one process, CPU) the test split's mAP@0.5 must reach MAP50_FLOOR.
"""
import os

import pytest

from opentad.cores.runner import train

pytestmark = pytest.mark.slow

MAP50_FLOOR = 0.7
MAX_EPOCH = 10
CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "configs", "temporalmaxer", "synthetic_features.py")


def test_synthetic_features_recipe_learns(tmp_path, monkeypatch, synthetic_data):
    synthetic_data(tmp_path)  # the default settings, features only
    monkeypatch.chdir(tmp_path)
    metrics = train([
        CONFIG, "--cfg-options", f"work_dir={tmp_path / 'exps'}", f"scheduler.max_epoch={MAX_EPOCH}",
        "workflow.val_loss_interval=-1", f"workflow.val_eval_interval={MAX_EPOCH}",
    ])
    assert metrics["mAP@0.5"] >= MAP50_FLOOR, metrics
