"""tools/summarize_results.py on run folders fabricated with the engine's own writers.

Each run folder is made as a training run makes it: the resolved config dumped
under the recipe's file name, the ``run`` and ``params`` records of
``metrics.jsonl`` (:class:`~opentad.cores.run_log.RunMetrics`), a log written
through ``setup_logger`` with the mAP evaluator's ``logging``, and for two runs
the ``eval`` record of the test engine's ``append_eval_record``. The expected
table is formatted here from the evaluator's metrics.
"""
import importlib.util
import logging
import os

import pytest
from torch import nn

from opentad.cores.run_log import RunMetrics, parameter_record
from opentad.cores.test_engine import append_eval_record
from opentad.evaluations import mAP
from opentad.utils.config import load_config
from opentad.utils.logger import setup_logger

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, "configs")
ADAPTER = os.path.join(CONFIGS, "adatad", "thumos", "e2e_thumos_videomae_s_768x1_160_adapter.py")
QLORA = os.path.join(CONFIGS, "adatad", "thumos", "e2e_thumos_videomae_s_768x1_160_adapter_qlora.py")

GT = {"database": {
    "v1": {"subset": "validation", "duration": 30.0, "frame": 900,
           "annotations": [{"label": "A", "segment": [1.0, 4.0]}, {"label": "B", "segment": [10.0, 12.0]}]},
    "v2": {"subset": "validation", "duration": 30.0, "frame": 900,
           "annotations": [{"label": "A", "segment": [5.0, 9.0]}, {"label": "B", "segment": [20.0, 26.0]}]},
}}


def predictions(shift):
    return {"v1": [{"segment": [1.0 + shift, 4.0], "label": "A", "score": 0.9},
                   {"segment": [10.0, 12.0 + shift], "label": "B", "score": 0.5}],
            "v2": [{"segment": [5.0, 9.0 - shift], "label": "A", "score": 0.8},
                   {"segment": [21.0, 26.0], "label": "B", "score": 0.7}]}


def parameters(trainable_m, frozen_m):
    """A detector-like module with ``trainable_m`` and ``frozen_m`` million parameters.

    Its ``backbone`` holds all the frozen ones and 0.5 M trainable ones, its
    ``rpn_head`` the other trainable ones.
    """
    module = nn.Module()
    module.backbone = nn.Sequential(nn.Linear(1000, 1000 * frozen_m, bias=False), nn.Linear(1000, 500, bias=False))
    module.backbone[0].requires_grad_(False)
    module.rpn_head = nn.Linear(1000, 1000 * trainable_m - 500, bias=False)
    return module


def fabricate(parent, *, config, gpus, options, shift, model, record, epoch=None, mode="train"):
    """One ``gpu{N}_id0`` run folder (``mode``: the tool that ran, naming the log); returns the evaluator's metrics."""
    run = parent / f"gpu{gpus}_id0"
    run.mkdir(parents=True)
    load_config(config, options).dump(str(run / os.path.basename(config)))
    log = setup_logger(str(run / f"{mode}_20260101_000000.log")).getChild("cores.launch")
    metrics = RunMetrics(str(run))
    metrics.write("run", mode=mode, world_size=gpus, device="cuda:0", torch="2.5.0")
    metrics.write("params", **parameter_record(model))
    evaluator = mAP(ground_truth_filename=GT, prediction_filename=dict(results=predictions(shift)),
                    subset="validation", tiou_thresholds=[0.3, 0.4, 0.5, 0.6, 0.7])
    metrics = evaluator.evaluate()
    evaluator.logging(log)
    if record:
        append_eval_record(str(run), metrics, num_videos=2, epoch=epoch)
    for handler in list(logging.getLogger("opentad").handlers):
        logging.getLogger("opentad").removeHandler(handler)
        handler.close()
    return metrics


@pytest.fixture
def runs(tmp_path):
    return {
        "recipe/gpu2_id0": fabricate(tmp_path / "recipe", config=ADAPTER, gpus=2, options=None, shift=0.0,
                                     model=parameters(1, 3), record=True, epoch=59),
        "bigger_batch/gpu1_id0": fabricate(tmp_path / "bigger_batch", config=QLORA, gpus=1,
                                           options={"solver.train.batch_size": 4}, shift=1.0,
                                           model=parameters(2, 6), record=False),
        "one_gpu/gpu1_id0": fabricate(tmp_path / "one_gpu", config=ADAPTER, gpus=1, options=None, shift=1.5,
                                      model=parameters(1, 3), record=True),
    }


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_rows_and_batch_warnings(runs, tmp_path, capsys):
    assert load_tool("summarize_results").main([str(tmp_path), "--configs", CONFIGS]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0] == ("| run | config | GPUs | batch/GPU | global batch | backbone | setting | trainable params "
                        "| backbone trainable | evaluated | mAP@0.3 | mAP@0.4 | mAP@0.5 | mAP@0.6 | mAP@0.7 | avg |")
    adapter, qlora = os.path.basename(ADAPTER), os.path.basename(QLORA)
    setups = {
        # backbone: 0.5 M trainable of 3.5 M (1/7) and of 6.5 M (1/13)
        "recipe/gpu2_id0": [adapter, "2", "1", "2", "ViT-S", "adapter", "1.00M (25.00%)", "500.0K (14.29%)",
                            "epoch 59"],
        "bigger_batch/gpu1_id0": [qlora, "1", "4", "4", "ViT-S", "qlora", "2.00M (25.00%)", "500.0K (7.69%)", "log"],
        "one_gpu/gpu1_id0": [adapter, "1", "2", "2", "ViT-S", "adapter", "1.00M (25.00%)", "500.0K (14.29%)",
                             "test"],
    }
    rows = {}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    assert sorted(rows) == sorted(runs)
    for name, metrics in runs.items():
        maps = [f"{100 * metrics[f'mAP@{t}']:.2f}" for t in (0.3, 0.4, 0.5, 0.6, 0.7)]
        assert rows[name] == setups[name] + maps + [f"{100 * metrics['average_mAP']:.2f}"], name
    assert len({tuple(r[-6:]) for r in rows.values()}) == 3  # the three runs' results differ
    warnings = [line for line in out.splitlines() if line.startswith("- `")]
    by_run = {name: [w for w in warnings if w.startswith(f"- `{name}`")] for name in runs}
    assert by_run["recipe/gpu2_id0"] == []
    assert len(by_run["bigger_batch/gpu1_id0"]) == 2
    assert "global batch 4 (1 GPU x 4) differs from the recipe's 2" in by_run["bigger_batch/gpu1_id0"][0]
    assert "1 GPU(s) x 4 per GPU, the recipe's results on 2 GPU(s) x 1" in by_run["bigger_batch/gpu1_id0"][1]
    assert len(by_run["one_gpu/gpu1_id0"]) == 1 and "issue #41" in by_run["one_gpu/gpu1_id0"][0]


def test_missing_work_dir_is_one_line(tmp_path, capsys):
    assert load_tool("summarize_results").main([str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Work dir not found") and "Traceback" not in err


def test_a_test_only_folder_reports_test_processes_not_training(tmp_path, capsys):
    """tools/test.py alone in 2 processes: no training set-up to report, no recipe comparison (issue #16)."""
    synthetic = os.path.join(CONFIGS, "adatad", "synthetic", "e2e_synthetic_vit_tiny_adapter.py")  # batch 1, 1 GPU
    metrics = fabricate(tmp_path / "tested", config=synthetic, gpus=2, options=None, shift=0.5,
                        model=parameters(1, 1), record=True, mode="test")
    assert load_tool("summarize_results").main([str(tmp_path / "tested" / "gpu2_id0"), "--configs", CONFIGS]) == 0
    out = capsys.readouterr().out
    row = [c.strip() for c in [line for line in out.splitlines() if line.startswith("| ")][2].strip("|").split("|")]
    assert row[2:5] == ["2 (test only)", "-", "-"] and row[9] == "test"
    assert row[-1] == f"{100 * metrics['average_mAP']:.2f}"
    warnings = [line for line in out.splitlines() if line.startswith("- `")]
    assert len(warnings) == 1 and "test-only folder: tools/test.py ran with 2 process(es)" in warnings[0]
    assert "0.5" not in warnings[0] and "trained on" not in out
    # a checkpoint in the folder means training ran there: the batch columns and the recipe check come back
    (tmp_path / "tested" / "gpu2_id0" / "checkpoint").mkdir()
    (tmp_path / "tested" / "gpu2_id0" / "checkpoint" / "last.pth").write_bytes(b"")
    assert load_tool("summarize_results").main([str(tmp_path / "tested"), "--configs", CONFIGS]) == 0
    out = capsys.readouterr().out
    assert "| 2 | 0.5 | 1 |" in out and "trained on 2 GPU(s) x 0.5 per GPU" in out
