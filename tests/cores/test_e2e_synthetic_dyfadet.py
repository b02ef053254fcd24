"""End to end: configs/dyfadet/synthetic_features.py trained briefly on freshly generated synthetic features.

Guards the learning floor: after the recipe's 10 epochs (one process, CPU) the test split's
mAP@0.5 must reach MAP50_FLOOR, the floor of every detector's synthetic test.
"""
import os

import pytest

from opentad.cores.runner import train

pytestmark = pytest.mark.slow

MAP50_FLOOR = 0.7
CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "configs", "dyfadet", "synthetic_features.py")


def test_synthetic_features_recipe_learns(tmp_path, monkeypatch, synthetic_data):
    synthetic_data(tmp_path)  # the default settings, features only
    monkeypatch.chdir(tmp_path)
    metrics = train([CONFIG, "--cfg-options", f"work_dir={tmp_path / 'exps'}"])
    assert metrics["mAP@0.5"] >= MAP50_FLOOR, metrics
