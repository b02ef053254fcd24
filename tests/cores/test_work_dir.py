"""A fresh training never overwrites or mixes with an earlier run; stale partial files go; a resume on
another world size warns."""
import glob
import logging
import os
import subprocess
import sys

import pytest
import torch

from opentad.cores.runner import train as run_train
from opentad.cores.work_dir import WorkDirError, guard_work_dir, warn_world_size_change

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _fake_run(run_dir, names=("last.pth", "epoch_0.pth")):
    (run_dir / "checkpoint").mkdir(parents=True)
    for name in names:
        (run_dir / "checkpoint" / name).write_bytes(name.encode())
    (run_dir / "train_20240101_000000.log").write_text("old log")


# ----------------------------------------------------------------------------------------------- unit
def test_a_folder_without_checkpoints_or_a_resume_passes(tmp_path):
    assert guard_work_dir(str(tmp_path / "new"), resume=None, move_old=False, is_main=True) is None
    (tmp_path / "logs_only" / "checkpoint").mkdir(parents=True)
    (tmp_path / "logs_only" / "checkpoint" / ".last.pth.tmp123").write_bytes(b"")  # partial files do not count
    assert guard_work_dir(str(tmp_path / "logs_only"), resume=None, move_old=False, is_main=True) is None
    _fake_run(tmp_path / "old")
    assert guard_work_dir(str(tmp_path / "old"), resume="x/last.pth", move_old=False, is_main=True) is None


def test_the_refusal_is_one_line_naming_the_folder_and_the_ways_on(tmp_path):
    _fake_run(tmp_path / "gpu1_id0")
    _fake_run(tmp_path / "gpu1_id3")
    run_dir = str(tmp_path / "gpu1_id0")
    with pytest.raises(WorkDirError) as info:
        guard_work_dir(run_dir, resume=None, move_old=False, is_main=True)
    message = str(info.value)
    assert "\n" not in message and message.startswith(run_dir)
    assert "epoch_0.pth, last.pth" in message
    assert f"--resume {os.path.join(run_dir, 'checkpoint', 'last.pth')}" in message
    assert "--id 4" in message and "--move_old_run" in message  # ids 0 and 3 hold checkpoints


def test_move_old_run_moves_everything_but_earlier_old_folders(tmp_path):
    run_dir = tmp_path / "gpu1_id0"
    _fake_run(run_dir)
    assert guard_work_dir(str(run_dir), resume=None, move_old=True, is_main=False) is None  # only rank 0 moves
    first = guard_work_dir(str(run_dir), resume=None, move_old=True, is_main=True)
    assert os.path.dirname(first) == str(run_dir) and os.path.basename(first).startswith("old_")
    assert os.listdir(run_dir) == [os.path.basename(first)]
    assert sorted(os.listdir(first)) == ["checkpoint", "train_20240101_000000.log"]
    assert (run_dir / os.path.basename(first) / "checkpoint" / "last.pth").read_bytes() == b"last.pth"
    _fake_run(run_dir)
    second = guard_work_dir(str(run_dir), resume=None, move_old=True, is_main=True)
    assert second != first and sorted(os.listdir(run_dir)) == sorted(os.path.basename(p) for p in (first, second))
    assert sorted(os.listdir(first)) == ["checkpoint", "train_20240101_000000.log"]  # untouched


@pytest.mark.parametrize("saved, now, batch, per_process", [
    (1, 2, 4, "each process now loads 2 sample(s) a step (was 4)"),
    (4, 2, 8, "each process now loads 4 sample(s) a step (was 2)"),
])
def test_world_size_change_warns_once_with_the_batch_split(saved, now, batch, per_process, caplog):
    with caplog.at_level(logging.WARNING, logger="opentad"):
        message = warn_world_size_change({"world_size": saved}, world_size=now, batch_size=batch, path="c/last.pth")
    assert caplog.messages == [message] and "\n" not in message
    assert f"Resuming c/last.pth, saved by {saved} process(es), on {now}" in message
    assert f"solver.train.batch_size={batch}" in message and per_process in message and "data order" in message
    assert warn_world_size_change({"world_size": now}, world_size=now, batch_size=batch, path="p") is None
    assert warn_world_size_change({}, world_size=now, batch_size=batch, path="p") is None
    assert warn_world_size_change(None, world_size=now, batch_size=batch, path="p") is None


# -------------------------------------------------------------------------------------- through the runner
def _train(cfg, work_dir, *extra, end_epoch=1):
    return run_train([cfg, *extra, "--cfg-options", f"work_dir={work_dir}", f"workflow.end_epoch={end_epoch}",
                      "workflow.val_loss_interval=-1", "workflow.val_eval_interval=-1"])


def _logs(run_dir):
    """The text of the run folder's training logs (the runner installs its own log handlers)."""
    return "".join(open(p).read() for p in sorted(glob.glob(str(run_dir / "train_*.log"))))


def test_retraining_into_a_used_folder(tiny_data_root, tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_data_root)
    run_dir = tmp_path / "w" / "gpu1_id0"
    stale = run_dir / "checkpoint" / ".last.pth.tmp999999999"  # a killed run's partial file (no such pid)
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"partial")
    _train(tiny_config, tmp_path / "w")
    assert not stale.exists() and f"Removed {stale}, a partial file of process 999999999" in _logs(run_dir)
    before = {p: open(p, "rb").read() for p in glob.glob(str(run_dir / "**"), recursive=True) if os.path.isfile(p)}

    with pytest.raises(WorkDirError, match="--move_old_run"):
        _train(tiny_config, tmp_path / "w")
    after = {p: open(p, "rb").read() for p in glob.glob(str(run_dir / "**"), recursive=True) if os.path.isfile(p)}
    assert after == before  # refused before writing anything

    _train(tiny_config, tmp_path / "w", "--move_old_run")
    (old,) = glob.glob(str(run_dir / "old_*"))
    assert f"The earlier run's files were moved into {old}" in _logs(run_dir)
    for path, data in before.items():
        assert open(path.replace(str(run_dir), old), "rb").read() == data
    assert sorted(os.listdir(run_dir / "checkpoint")) == ["epoch_0.pth", "last.pth"]


def test_resume_on_another_world_size_warns_through_the_runner(tiny_data_root, tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_data_root)
    _train(tiny_config, tmp_path / "w")
    last = tmp_path / "w" / "gpu1_id0" / "checkpoint" / "last.pth"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["meta"]["world_size"] == 1
    ckpt["meta"]["world_size"] = 2  # as if saved by two processes
    torch.save(ckpt, tmp_path / "two.pth")
    _train(tiny_config, tmp_path / "w", "--resume", str(tmp_path / "two.pth"), end_epoch=2)
    text = _logs(tmp_path / "w" / "gpu1_id0")
    assert f"Resuming {tmp_path / 'two.pth'}, saved by 2 process(es), on 1: " in text
    assert "each process now loads 2 sample(s) a step (was 1)" in text  # the tiny config's global batch is 2


def test_the_command_line_refusal_has_no_traceback(tiny_config, tmp_path):
    _fake_run(tmp_path / "w" / "gpu1_id0")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), tiny_config,
                             "--cfg-options", f"work_dir={tmp_path / 'w'}"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train.py: error: ") and str(tmp_path / "w") in lines[0]
