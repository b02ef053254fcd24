"""tools/train.py, dist_train.sh, dist_test.sh: one plain process, and two torchrun processes (Gloo on CPU)."""
import glob
import os
import runpy
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.slow


def run(script, *args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHON=sys.executable)
    return subprocess.run(["bash", os.path.join(ROOT, "tools", script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_two_process_train_then_test(tiny_data_root, tiny_config, tmp_path):
    work = tmp_path / "dist"
    opts = ["--cfg-options", f"work_dir={work}", "workflow.end_epoch=1", "workflow.val_eval_interval=1",
            "solver.static_graph=True", "solver.fp16_compress=True"]
    result = run("dist_train.sh", tiny_config, "2", *opts, cwd=tiny_data_root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = work / "gpu2_id0"
    assert (run_dir / "checkpoint" / "last.pth").is_file()
    logs = glob.glob(str(run_dir / "train_*.log"))
    assert len(logs) == 1  # rank 0 only
    text = open(logs[0]).read()
    assert "DDP over 2 processes" in text and "mAP at tIoU 0.50" in text
    assert result.stdout.count("Training over.") == 1  # rank-0 logging

    result = run("dist_test.sh", tiny_config, "2", "--checkpoint", str(run_dir / "checkpoint" / "last.pth"),
                 "--cfg-options", f"work_dir={work}", cwd=tiny_data_root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("mAP at tIoU 0.50") == 1


def test_plain_process_without_torchrun(tiny_data_root, tiny_config, tmp_path, monkeypatch):
    """``python tools/train.py`` (run in this interpreter): no RANK in the environment, no process group."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tiny_data_root)
    monkeypatch.setattr(sys, "argv", [
        "tools/train.py", tiny_config, "--cfg-options", f"work_dir={tmp_path}", "workflow.end_epoch=1",
        "workflow.val_loss_interval=-1", "workflow.val_eval_interval=-1",
    ])
    runpy.run_path(os.path.join(ROOT, "tools", "train.py"), run_name="__main__")
    assert (tmp_path / "gpu1_id0" / "checkpoint" / "epoch_0.pth").is_file()
    assert not torch.distributed.is_initialized()
