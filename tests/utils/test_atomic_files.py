"""Partial checkpoint files of killed processes (``.{name}.tmp{pid}``) are removed; others are kept."""
import logging
import os
import subprocess
import sys
import textwrap

from opentad.utils.atomic_files import atomic_save, remove_stale_partial_files

# A process that starts an atomic_save of last.pth and is killed (SIGKILL) while the partial file exists.
KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    import opentad.utils.atomic_files as atomic_files

    def save_then_die(obj, handle):
        handle.write(b"half a checkpoint")
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    atomic_files.torch.save = save_then_die
    atomic_files.atomic_save({"epoch": 1}, sys.argv[1])
""")


def test_only_the_files_of_dead_processes_go(tmp_path, caplog):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    killed = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(folder / "last.pth")])
    assert killed.wait(timeout=120) == -9
    left = folder / f".last.pth.tmp{killed.pid}"
    assert os.listdir(folder) == [left.name]  # the partial file, no last.pth

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        keep = [f".epoch_3.pth.tmp{live.pid}", f".last.pth.tmp{os.getpid()}", "last.pth", "x.tmp1", ".notes"]
        for name in keep:
            (folder / name).write_bytes(b"x")
        with caplog.at_level(logging.INFO, logger="opentad"):
            removed = remove_stale_partial_files(str(folder))
    finally:
        live.kill()
        live.wait()
    assert removed == [str(left)] and not left.exists()
    assert sorted(os.listdir(folder)) == sorted(keep)
    assert f"Removed {left}, a partial file of process" in caplog.text
    assert remove_stale_partial_files(str(tmp_path / "missing")) == []


def test_a_finished_save_leaves_nothing_to_clean(tmp_path):
    atomic_save({"epoch": 0}, str(tmp_path / "last.pth"))
    assert os.listdir(tmp_path) == ["last.pth"]
    assert remove_stale_partial_files(str(tmp_path)) == []
