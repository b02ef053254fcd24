"""benchmarks.evaluation: every evaluator runs on a shrunk preset through tools/benchmark_eval.py's options,
and the generated cases are what the evaluators read (near copies of ground truth are found, random segments not)."""
import os

import numpy as np
import pytest

from benchmarks import evaluation

TINY = dict(videos=30, classes=4, actions=45, predictions=600, subset="validation", duration=(30.0, 240.0),
            length=("fraction", 0.05, 0.8), classes_per_video=1)


@pytest.mark.parametrize("name", ["mAP", "Recall", "mAP_EPIC"])
def test_every_evaluator_fills_its_table(monkeypatch, capsys, load_tool, name):
    monkeypatch.setitem(evaluation.PRESETS, "anet", TINY)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # the tool sets them: restore after
        monkeypatch.setenv(var, os.environ.get(var, "1"))
    load_tool("benchmark_eval")["main"](
        ["--evaluator", name, "--preset", "anet", "--repeats", "1", "--near-fraction", "0", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "%" in line]
    assert [r.split(" | ")[0] for r in rows] == ["| 0%", "| 100%"]
    low, high = (float(r.rstrip(" |").rsplit("| ", 1)[1]) for r in rows)
    assert low < high  # predictions copied from the ground truth score higher than random ones


def test_every_video_of_the_anet_preset_has_an_action():
    _, gt_video, gt_start, gt_len, _ = evaluation._ground_truth(np.random.default_rng(0), dict(TINY, actions=45))
    assert set(gt_video) == set(range(TINY["videos"])) and (gt_start >= 0).all() and (gt_len > 0).all()
