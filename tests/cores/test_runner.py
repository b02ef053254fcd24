"""The training / test runs in one process: exact resume, work-dir layout, test tool, early config errors."""
import glob
import json
import os

import pytest
import torch

from opentad.cores.runner import test as run_test
from opentad.cores.runner import train as run_train
from opentad.registry import ConfigError


def train(cfg, work_dir, *extra, end_epoch):
    opts = [f"work_dir={work_dir}", f"workflow.end_epoch={end_epoch}", "solver.ema=True"]
    return run_train([cfg, "--seed", "3", *extra, "--cfg-options", *opts])


def assert_same(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_resume_equals_uninterrupted_run_and_test_tool(tiny_data_root, tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_data_root)
    metrics = train(tiny_config, tmp_path / "a", end_epoch=2)  # evaluation at epoch 1 (val_eval_interval=2)
    assert 0.0 <= metrics["mAP@0.5"] <= 1.0
    train(tiny_config, tmp_path / "b", end_epoch=1)  # "interrupted" after epoch 0 ...
    run_b = tmp_path / "b" / "gpu1_id0"
    train(tiny_config, tmp_path / "b", "--resume", str(run_b / "checkpoint" / "last.pth"), end_epoch=2)  # ... resumed

    run_a = tmp_path / "a" / "gpu1_id0"
    final_a = torch.load(run_a / "checkpoint" / "last.pth", weights_only=True)
    final_b = torch.load(run_b / "checkpoint" / "last.pth", weights_only=True)
    assert final_a["epoch"] == final_b["epoch"] == 1
    for key in ("state_dict", "state_dict_ema", "optimizer", "scheduler", "rng"):
        assert_same(final_a[key], final_b[key], key)
    assert final_a["state_dict"].keys() == final_a["state_dict_ema"].keys()
    first = torch.load(run_a / "checkpoint" / "epoch_0.pth", weights_only=True)
    key = "module.rpn_head.cls_head.weight"
    assert not torch.equal(final_a["state_dict"][key], first["state_dict"][key])  # epoch 1 did train

    files = sorted(os.listdir(run_a))
    assert "tiny_actionformer.py" in files and "tensorboard" in files and "checkpoint" in files
    assert glob.glob(str(run_a / "train_*.log"))
    assert sorted(os.listdir(run_a / "checkpoint")) == ["best.pth", "epoch_0.pth", "epoch_1.pth", "last.pth"]
    log = open(glob.glob(str(run_a / "train_*.log"))[0]).read()
    assert "trainable params:" in log and "mAP at tIoU 0.50" in log
    records = [json.loads(line) for line in (run_a / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["event"] == "eval" and records[-1]["epoch"] == 1
    assert records[-1]["mAP@0.5"] == metrics["mAP@0.5"]
    assert [r["event"] for r in records[:2]] == ["run", "params"] and records[0]["world_size"] == 1
    epochs = [r for r in records if r["event"] == "throughput"]
    assert [r["epoch"] for r in epochs] == [0, 1]
    steps = [(r["epoch"], r["iter"], r["cost"]) for r in records if r["event"] == "train"]
    assert len(steps) == sum(r["iters"] for r in epochs) > 0
    records_b = [json.loads(line) for line in (run_b / "metrics.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records_b].count("run") == 2  # the first launch and the resumed one append
    assert [(r["epoch"], r["iter"], r["cost"]) for r in records_b if r["event"] == "train"] == steps  # exact resume

    again = run_test([tiny_config, "--checkpoint", str(run_a / "checkpoint" / "epoch_1.pth"),
                      "--cfg-options", f"work_dir={tmp_path / 'a'}", "solver.ema=True"])
    assert again["mAP@0.5"] == pytest.approx(metrics["mAP@0.5"])  # the EMA weights evaluated during training
    assert glob.glob(str(run_a / "test_*.log"))


def test_config_errors_stop_before_anything_is_built(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="clip_grad_nrom"):
        run_train([tiny_config, "--cfg-options", f"work_dir={tmp_path / 'c'}", "solver.clip_grad_nrom=1"])
    assert not (tmp_path / "c").exists()


def test_a_failing_run_writes_its_traceback_into_the_log_file(tiny_data_root, tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_data_root)

    def crash(self):
        raise RuntimeError("an unexpected failure")

    monkeypatch.setattr("opentad.cores.trainer.Trainer.fit", crash)
    with pytest.raises(RuntimeError, match="unexpected"):
        train(tiny_config, tmp_path / "f", end_epoch=1)
    log = open(glob.glob(str(tmp_path / "f" / "gpu1_id0" / "train_*.log"))[0]).read()
    assert "Training failed on rank 0 of 1" in log and "Traceback (most recent call last)" in log
    assert "RuntimeError: an unexpected failure" in log


def test_bad_input_is_one_log_line_without_traceback(tiny_data_root, tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_data_root)
    missing = str(tmp_path / "nowhere" / "epoch_0.pth")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        train(tiny_config, tmp_path / "f", "--resume", missing, end_epoch=1)
    log = open(glob.glob(str(tmp_path / "f" / "gpu1_id0" / "train_*.log"))[0]).read()
    assert f"Training failed on rank 0 of 1: --resume checkpoint file not found: {missing}" in log
    assert "Traceback" not in log


def _typo_annotations(data_root, tmp_path):
    """A copy of the synthetic annotations with one test label that is not a class (a file of its own)."""
    anno = json.loads((data_root / "data" / "synthetic-thumos" / "annotations" / "thumos_14_anno.json").read_text())
    video = next(name for name, info in anno["database"].items() if info["subset"] == "test" and info["annotations"])
    anno["database"][video]["annotations"][0]["label"] = "Typo"
    path = tmp_path / "eval_anno.json"
    path.write_text(json.dumps(anno))
    return str(path), video


def test_a_bad_evaluation_file_stops_the_run_at_setup_in_one_line(tiny_data_root, tiny_config, tmp_path, monkeypatch,
                                                                  capsys):
    """Issue #16: found after a whole training epoch before, and logged with its stack trace."""
    from opentad.cores.launch import run_cli

    monkeypatch.chdir(tiny_data_root)
    path, video = _typo_annotations(tiny_data_root, tmp_path)
    epochs = []

    class Built(Exception):
        pass

    def build_model(ctx):
        raise Built()

    monkeypatch.setattr("opentad.cores.trainer.Trainer.run_epoch", lambda self, epoch: epochs.append(epoch))
    monkeypatch.setattr("opentad.cores.runner.build_model", build_model)
    monkeypatch.setattr("opentad.cores.trainer.build_model", build_model)
    expected = (f"ground_truth_filename {path!r}: 1 ground-truth segment(s) of 1 video(s) in subset 'test' have "
                f"labels not in the class map ['Typo'] (e.g. video {video!r}")
    work = f"work_dir={tmp_path / 'w'}"
    for entry, argv in [(run_train, [tiny_config, "--cfg-options", work, "workflow.val_eval_interval=1"]),
                        (run_test, [tiny_config, "--checkpoint", str(tmp_path / "none.pth"), "--cfg-options", work])]:
        assert run_cli(entry, argv + [f"evaluation.ground_truth_filename={path}"], prog="tool.py") == 1
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("tool.py: error: " + expected), lines
    assert epochs == []
    # the model is never built: the error comes before; with --not_eval the file is not read, the run goes on
    with pytest.raises(Built):
        run_test([tiny_config, "--not_eval", "--checkpoint", str(tmp_path / "none.pth"), "--cfg-options", work,
                  f"evaluation.ground_truth_filename={path}"])
