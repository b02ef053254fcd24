"""End to end: configs/afsd/synthetic_features.py trained briefly on freshly generated synthetic features.

Guards AFSD's learning floor like tests/cores/test_e2e_synthetic.py guards ActionFormer's: after a
short single-process CPU training (scheduler.max_epoch=EPOCHS, the rate divided by 10 after epoch 6)
the test split's mAP@0.5 must reach MAP50_FLOOR. AFSD classifies the segments itself.
"""
import os

import pytest

from opentad.cores.runner import train

pytestmark = pytest.mark.slow

MAP50_FLOOR = 0.7
EPOCHS = 8
CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "configs", "afsd", "synthetic_features.py")


def test_synthetic_features_afsd_learns(tmp_path, monkeypatch, synthetic_data):
    synthetic_data(tmp_path)  # the default settings, features only
    monkeypatch.chdir(tmp_path)
    metrics = train([
        CONFIG, "--cfg-options", f"work_dir={tmp_path / 'exps'}", f"scheduler.max_epoch={EPOCHS}",
        "workflow.val_loss_interval=-1", f"workflow.val_eval_interval={EPOCHS}",
    ])
    assert metrics["mAP@0.5"] >= MAP50_FLOOR, metrics
