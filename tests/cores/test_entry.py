"""Failure reports of tools/train.py / tools/test.py (opentad.cores.entry through launch.run_cli): once, one line.

The unit tests drive ``run_cli`` with small entry functions that fail in set-up
or while running, with ``RANK`` set as torchrun sets it (bad input met while
running, a damaged video or an evaluation file, also from a DataLoader worker
process, is one line as well); the last test runs tools/train.py under
torchrun in two CPU processes with the batch error of issue #16 (a global
batch of 1 over 2 processes) and counts what is printed.
"""
import glob
import io
import logging
import os
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader

from opentad.cores import entry
from opentad.cores.entry import one_line, reported_failures
from opentad.cores.launch import USER_ERRORS, run_cli
from opentad.datasets.video_reader import VideoReadError
from opentad.evaluations import GroundTruthError
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


def test_without_a_process_group_other_ranks_wait_then_speak_only_if_still_alive(rank, capsys):
    """No store to read rank 0's outcome from: under torchrun rank 0's exit ends them during the grace wait."""
    waits = rank(1)
    code = run_cli(failing_run(FileNotFoundError("features/v3.npy not found"), in_setup=True), [], prog="train.py")
    out, err = capsys.readouterr()
    assert code == 1 and waits == [entry.GRACE_S] and out == ""
    assert err == "train.py: error: [rank 1] features/v3.npy not found\n"


class RecordingStore:
    """A real in-process store (``HashStore``) that records each ``set`` with what stderr held at that moment.

    ``arrives``: the value rank 0 publishes while this rank waits (set inside ``wait``, before waiting).
    """

    def __init__(self, stderr, arrives=None):
        self.inner, self.stderr, self.arrives = torch.distributed.HashStore(), stderr, arrives
        self.sets, self.waits = [], 0

    def set(self, key, value):
        self.sets.append((key, value, self.stderr.getvalue()))
        self.inner.set(key, value)

    def wait(self, keys, timeout):
        self.waits += 1
        if self.arrives is not None:
            self.inner.set(entry.SETUP_KEY, self.arrives)
        self.inner.wait(keys, timeout)

    def get(self, key):
        return self.inner.get(key)


@pytest.fixture
def store(monkeypatch):
    """Make a :class:`RecordingStore` the run's store; stderr goes to a StringIO it can read."""

    def make(arrives=None):
        stderr = io.StringIO()  # set in the test's body: pytest's capture replaces sys.stderr after fixtures
        monkeypatch.setattr(entry.sys, "stderr", stderr)
        made = RecordingStore(stderr, arrives)
        monkeypatch.setattr(entry, "_run_store", lambda: made)
        return made

    return make


def test_rank_0_publishes_failed_only_after_its_line_is_printed(rank, store):
    waits, made = rank(0), store()
    code = run_cli(failing_run(ValueError("batch_size 1 must be a multiple of world_size 2"), in_setup=True), [],
                   prog="train.py")
    line = "train.py: error: batch_size 1 must be a multiple of world_size 2\n"
    assert code == 1 and waits == [] and made.sets == [(entry.SETUP_KEY, "failed", line)]


def test_rank_0_publishes_ok_when_its_setup_ends_and_nothing_after_a_setup_bug(rank, store):
    """A bug in rank 0's set-up publishes nothing: another rank whose own mistake it is (rank 0 may be the one
    blocked, in a set-up collective) still prints its line once its wait ends."""
    rank(0)
    made = store()
    with pytest.raises(RuntimeError, match="later"):
        with reported_failures(rank=0, world_size=2, what="Training", user_errors=USER_ERRORS) as stage:
            assert made.sets == []
            stage.running()
            assert [s[:2] for s in made.sets] == [(entry.SETUP_KEY, "ok")]
            raise RuntimeError("later")
    assert len(made.sets) == 1  # a failure while running publishes nothing more
    made = store()
    assert run_cli(failing_run(TypeError("unsupported operand"), in_setup=True), [], prog="train.py") == 1
    assert made.sets == []
    with pytest.raises(ValueError, match="'ok' or 'failed'"):
        entry.publish_setup_outcome("done")


@pytest.mark.parametrize("published,printed", [
    ("failed", False),  # rank 0 reported its line: this rank stays quiet
    ("ok", True),  # rank 0's set-up went on: this failure is this rank's own
], ids=["rank-0-failed", "rank-0-went-on"])
def test_other_ranks_follow_rank_0s_published_outcome_not_a_clock(rank, store, published, printed):
    """The outcome arrives while this rank waits (the store sets it inside ``wait``)."""
    waits, made = rank(1), store(arrives=published)
    code = run_cli(failing_run(FileNotFoundError("features/v3.npy not found"), in_setup=True), [], prog="train.py")
    assert code == 1 and waits == [] and made.waits == 1 and made.sets == []
    assert made.stderr.getvalue() == ("train.py: error: [rank 1] features/v3.npy not found\n" if printed else "")


def test_a_rank_whose_wait_for_rank_0_times_out_reports_its_own_failure(rank, store, monkeypatch):
    """Rank 0 published nothing (a bug in its set-up, or blocked in a set-up collective)."""
    waits, made = rank(1), store()
    monkeypatch.setattr(entry, "OUTCOME_TIMEOUT_S", 0.01)
    code = run_cli(failing_run(FileNotFoundError("features/v3.npy not found"), in_setup=True), [], prog="train.py")
    assert code == 1 and waits == [] and made.waits == 1
    assert made.stderr.getvalue() == "train.py: error: [rank 1] features/v3.npy not found\n"


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


BAD_VIDEO = "Cannot read video /data/v7.mp4: [Errno 1094995529] Invalid data found when processing input: '/data/v7.mp4'"
BAD_LABEL = ("ground_truth_filename 'eval.json': 1 ground-truth segment(s) of 1 video(s) in subset 'test' have labels "
             "not in the class map ['Typo'] (e.g. video 'v2'; the class map has 2 classes: ['A', 'B'])")


@pytest.mark.parametrize("exc", [VideoReadError(BAD_VIDEO), GroundTruthError(BAD_LABEL)],
                         ids=["VideoReadError", "GroundTruthError"])
def test_a_damaged_video_or_evaluation_file_met_while_running_is_one_line(rank, capsys, exc):
    """Issue #16: both were logged with their stack trace (after an epoch, for the evaluation file)."""
    rank(0)
    code = run_cli(failing_run(exc, in_setup=False), [], prog="train.py")
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and "Traceback" not in out + err
    assert lines[0].endswith(f"ERROR opentad.cores.entry: Training failed on rank 0 of 2: {exc}")


class DamagedVideos(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        if index == 2:
            raise VideoReadError(f"Cannot decode video /data/v{index}.mp4: Invalid data found when processing input")
        return torch.zeros(1)


def test_an_error_from_a_loader_worker_is_its_own_message(rank, capsys):
    """torch re-raises a worker's exception with the worker's traceback as its message; the line drops it."""
    rank(0)

    def run(argv):
        setup_logger(None)
        with reported_failures(rank=0, world_size=1, what="Training", user_errors=USER_ERRORS) as stage:
            stage.running()
            for _ in DataLoader(DamagedVideos(), batch_size=1, num_workers=1):
                pass

    assert run_cli(run, [], prog="train.py") == 1
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out + err and "Caught" not in out + err, out + err
    assert lines[0].endswith("Training failed on rank 0 of 1: Cannot decode video /data/v2.mp4: Invalid data found "
                             "when processing input")


def test_one_line_takes_the_original_message_of_a_worker_exception():
    wrapped = FileNotFoundError(
        "Caught FileNotFoundError in DataLoader worker process 3.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\nFileNotFoundError: Features of video \'v1\' not found: f/v1.npy\n')
    assert one_line(wrapped) == "Features of video 'v1' not found: f/v1.npy"
    assert one_line(ValueError("Caught you: a plain message")) == "Caught you: a plain message"


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
    errors = [line for line in text.splitlines() if "solver.train.batch_size = 1 must be" in line]
    assert errors == [
        "train.py: error: solver.train.batch_size = 1 must be a positive multiple of the number of processes, 2 "
        "(it is the global batch, split evenly across them); e.g. solver.train.batch_size=2"], text[-3000:]
    assert "[rank1]" not in text and "[rank 1]" not in text  # nothing from the other rank
    log = open(glob.glob(str(tmp_path / "exps" / "gpu2_id0" / "train_*.log"))[0]).read()
    assert "Training failed on rank 0 of 2: solver.train.batch_size = 1" in log
