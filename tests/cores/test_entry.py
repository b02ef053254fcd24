"""Failure reports of tools/train.py / tools/test.py (opentad.cores.entry through launch.run_cli): once, one line.

The unit tests drive ``run_cli`` with small entry functions that fail in set-up
or while running, with ``RANK`` set as torchrun sets it; the last test runs
tools/train.py under torchrun in two CPU processes with the batch error of
issue #16 (a global batch of 1 over 2 processes) and counts what is printed.
"""
import glob
import logging
import os
import subprocess
import sys

import pytest

from opentad.cores import entry
from opentad.cores.entry import reported_failures
from opentad.cores.launch import USER_ERRORS, run_cli
from opentad.utils.logger import setup_logger

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def failing_run(exc, *, in_setup, log_file=None):
    """An entry function: installs the loggers like prepare_run, then raises ``exc`` in set-up or while running."""

    def run(argv):
        setup_logger(log_file)
        with reported_failures(rank=int(os.environ.get("RANK", 0)), world_size=2, what="Training",
                               user_errors=USER_ERRORS) as stage:
            if not in_setup:
                stage.running()
            raise exc

    return run


@pytest.fixture
def rank(monkeypatch):
    """Set torchrun's RANK; the grace wait of other ranks is recorded instead of slept."""
    waits = []
    monkeypatch.setattr(entry.time, "sleep", waits.append)

    def set_rank(value):
        monkeypatch.setenv("RANK", str(value))
        return waits

    return set_rank


def test_setup_mistake_is_one_line_from_rank_0_and_in_the_log_file(rank, tmp_path, capsys):
    waits = rank(0)
    log_file = tmp_path / "train.log"
    code = run_cli(failing_run(ValueError("batch_size 1 must be a multiple of world_size 2"), in_setup=True,
                               log_file=str(log_file)), [], prog="train.py")
    out, err = capsys.readouterr()
    assert code == 1 and waits == [] and out == ""
    assert err == "train.py: error: batch_size 1 must be a multiple of world_size 2\n"
    for handler in logging.getLogger("opentad").handlers:
        handler.flush()
    log = log_file.read_text()
    assert "Training failed on rank 0 of 2: batch_size 1 must be a multiple" in log and "Traceback" not in log


def test_other_ranks_wait_then_speak_only_if_still_alive(rank, capsys):
    """Under torchrun rank 0's exit ends them during the wait; a rank still alive reports its own failure."""
    waits = rank(1)
    code = run_cli(failing_run(FileNotFoundError("features/v3.npy not found"), in_setup=True), [], prog="train.py")
    out, err = capsys.readouterr()
    assert code == 1 and waits == [entry.GRACE_S] and out == ""
    assert err == "train.py: error: [rank 1] features/v3.npy not found\n"


def test_a_failure_while_running_is_logged_once_with_its_traceback(rank, capsys):
    rank(1)
    code = run_cli(failing_run(RuntimeError("NCCL timeout"), in_setup=False), [], prog="train.py")
    out, err = capsys.readouterr()
    assert code == 1
    text = out + err
    assert text.count("Training failed on rank 1 of 2") == 1 and text.count("Traceback (most recent call last)") == 1
    assert "RuntimeError: NCCL timeout" in text and "error:" not in text


def test_bad_input_while_running_is_one_log_line_on_the_rank_that_failed(rank, capsys):
    waits = rank(1)
    code = run_cli(failing_run(FileNotFoundError("video v7.mp4 not found"), in_setup=False), [], prog="train.py")
    out, err = capsys.readouterr()
    text = out + err
    assert code == 1 and waits == []
    assert text.count("video v7.mp4 not found") == 1 and "[rank 1]" in text and "Traceback" not in text


def test_a_bug_in_setup_keeps_its_traceback_and_debug_raises(rank, capsys):
    rank(0)
    assert run_cli(failing_run(TypeError("unsupported operand"), in_setup=True), [], prog="train.py") == 1
    text = "".join(capsys.readouterr())
    assert text.count("Traceback (most recent call last)") == 1 and "TypeError: unsupported operand" in text
    with pytest.raises(ValueError, match="bad value"):
        run_cli(failing_run(ValueError("bad value"), in_setup=True), ["--debug"], prog="train.py")
    with pytest.raises(KeyError):  # raised before any report and not bad input: the stack trace
        run_cli(lambda argv: {}["missing"], [], prog="train.py")


@pytest.mark.slow
def test_two_torchrun_processes_print_a_setup_error_once(tiny_data_root, tiny_config, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
               os.path.join(ROOT, "tools", "train.py"), tiny_config,
               "--cfg-options", f"work_dir={tmp_path / 'exps'}", "solver.train.batch_size=1"]
    result = subprocess.run(command, cwd=tiny_data_root, env=env, capture_output=True, text=True, timeout=300)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    errors = [line for line in text.splitlines() if "batch_size 1 must be a positive multiple of world_size 2" in line]
    assert errors == [
        "train.py: error: batch_size 1 must be a positive multiple of world_size 2 "
        "(it is the global batch, split evenly across processes)"], text[-3000:]
    assert "[rank1]" not in text and "[rank 1]" not in text  # nothing from the other rank
    log = open(glob.glob(str(tmp_path / "exps" / "gpu2_id0" / "train_*.log"))[0]).read()
    assert "Training failed on rank 0 of 2: batch_size 1" in log
