"""Killing tools/dist_train.sh the ways a user does leaves no worker training (torchrun starts each in its own session).

A tiny two-process Gloo training is started in a process group of its own; once it
trains, the group gets SIGTERM (``kill -TERM -PGID``, what a terminal's hang-up or
a job manager sends), or the launcher alone gets SIGKILL (``kill -9 PID``: nothing can
be forwarded; the workers must notice by themselves). Workers are found by the run's
unique config path in ``/proc/*/cmdline``.
"""
import glob
import os
import signal
import subprocess
import sys
import time

import pytest

from opentad.utils.process import pid_alive

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NPROC = "2"  # two Gloo workers
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")]


def _workers(config):
    """Live worker processes of the run: ``tools/train.py CONFIG`` but not torchrun itself."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if config.encode() in argv and b"torch.distributed.run" not in argv and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def _until(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.parametrize("how", ["SIGTERM to the group", "SIGKILL to the launcher"])
def test_no_worker_outlives_a_killed_launcher(how, tiny_data_root, tiny_config, tmp_path):
    work = tmp_path / "work"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHON=sys.executable)
    launcher = subprocess.Popen(
        ["bash", os.path.join(ROOT, "tools", "dist_train.sh"), tiny_config, NPROC, "--cfg-options", f"work_dir={work}",
         "workflow.end_epoch=10000", "workflow.val_loss_interval=-1", "workflow.val_eval_interval=-1",
         "workflow.checkpoint_interval=10000"],
        cwd=tiny_data_root, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    workers = []
    try:
        def training():
            logs = glob.glob(str(work / f"gpu{NPROC}_id0" / "train_*.log"))
            return bool(logs) and "Training epochs" in open(logs[0]).read()

        assert _until(training, 120), "the run did not start training"
        workers = _workers(tiny_config)
        assert len(workers) == int(NPROC)
        if how == "SIGTERM to the group":
            os.killpg(launcher.pid, signal.SIGTERM)
        else:
            os.kill(launcher.pid, signal.SIGKILL)
        assert _until(lambda: not any(pid_alive(p) for p in workers), 15), f"workers left: {_workers(tiny_config)}"
        assert launcher.wait(timeout=30) != 0
    finally:
        for pid in workers:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
