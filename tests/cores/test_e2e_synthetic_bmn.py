"""End to end: configs/bmn/synthetic_features.py trained briefly on freshly generated synthetic features.

Guards BMN's learning floor like tests/cores/test_e2e_synthetic.py guards ActionFormer's: after a short
single-process CPU training (scheduler.max_epoch=EPOCHS) the test split's mAP@0.5 must reach MAP50_FLOOR.
BMN's proposals are class-agnostic; the generator's video classifier (classifiers/video_classifier.json,
StandardClassifier, topk=2) names them, so the data has one class per video (classes_per_video=1).
"""
import os

import pytest

from opentad.cores.runner import train

pytestmark = pytest.mark.slow

# Proposal detectors (class-agnostic proposals labelled by the synthetic video classifier) train to mAP@0.5
# 0.70-0.84 in this budget depending on the training seed (BMN 0.75-0.78, ETAD 0.77-0.84, G-TAD 0.70-0.78,
# measured 2026-12-06); a CPU with other vector instructions rounds differently and follows another trajectory
# of the same spread, so the floor sits below it. An untrained or broken detector scores near 0.
MAP50_FLOOR = 0.6
EPOCHS = 8
CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "configs", "bmn", "synthetic_features.py")


def test_synthetic_features_bmn_learns(tmp_path, monkeypatch, synthetic_data):
    synthetic_data(tmp_path, classes_per_video=1)
    monkeypatch.chdir(tmp_path)
    metrics = train([
        CONFIG, "--cfg-options", f"work_dir={tmp_path / 'exps'}", f"scheduler.max_epoch={EPOCHS}",
        "workflow.val_loss_interval=-1", f"workflow.val_eval_interval={EPOCHS}",
    ])
    assert metrics["mAP@0.5"] >= MAP50_FLOOR, metrics
