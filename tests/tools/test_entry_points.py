"""CPU thread defaults of tools/train.py, tools/test.py and their torchrun launchers, the launcher pid they pass,
and the launchers' check of NUM_PROCS.

Reference: ``OMP_NUM_THREADS = max(1, usable cores // processes)`` (``usable``: this
process's CPU affinity, what ``nproc`` prints), passive OpenMP waiting when above 1,
and a value the user set is never changed.
"""
import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
CLEAN = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "LOCAL_WORLD_SIZE", "RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID",
         "OPENTAD_LAUNCHER_PID")


def _env(**overrides):
    env = {k: v for k, v in os.environ.items() if k not in CLEAN}
    env.update(overrides)
    return env


def _expected(processes):
    threads = max(1, CORES // processes)
    return str(threads), ("PASSIVE" if threads > 1 else None)


@pytest.fixture
def fake_python(tmp_path):
    """An interpreter stand-in that prints what the launcher handed it, and its own pid (the launcher execs it)."""
    path = tmp_path / "fake_python"
    path.write_text(textwrap.dedent("""\
        #!/usr/bin/env bash
        printf '{"omp": "%s", "wait": "%s", "launcher": "%s", "pid": "%s"}\\n' \\
            "${OMP_NUM_THREADS-}" "${OMP_WAIT_POLICY-}" "${OPENTAD_LAUNCHER_PID-}" "$$"
    """))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.parametrize("script", ["dist_train.sh", "dist_test.sh"])
@pytest.mark.parametrize("nproc", [1, 2])
def test_the_launchers_share_the_cores_and_name_themselves(fake_python, script, nproc):
    out = subprocess.run(["bash", os.path.join(ROOT, "tools", script), "cfg.py", str(nproc)],
                         env=_env(PYTHON=fake_python), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    omp, wait = _expected(nproc)
    assert (got["omp"], got["wait"] or None) == (omp, wait)
    assert got["launcher"] == got["pid"]  # exec: torchrun's pid, the workers' parent


def test_the_launchers_keep_the_users_values(fake_python):
    out = subprocess.run(["bash", os.path.join(ROOT, "tools", "dist_train.sh"), "cfg.py", "1"],
                         env=_env(PYTHON=fake_python, OMP_NUM_THREADS="3", OMP_WAIT_POLICY="ACTIVE"),
                         capture_output=True, text=True, timeout=60)
    got = json.loads(out.stdout)
    assert (got["omp"], got["wait"]) == ("3", "ACTIVE")


@pytest.mark.parametrize("script", ["dist_train.sh", "dist_test.sh"])
@pytest.mark.parametrize("nproc", ["0", "two", "-1", "", "2.5", "00"])
def test_the_launchers_refuse_a_bad_process_count_in_one_line(fake_python, script, nproc):
    """torchrun would answer 0 with a bare AssertionError and 'two' with a ValueError, both stack traces."""
    out = subprocess.run(["bash", os.path.join(ROOT, "tools", script), "cfg.py", nproc],
                         env=_env(PYTHON=fake_python), capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (2, "")  # the interpreter never started
    assert out.stderr == (f"{script}: error: NUM_PROCS must be a positive integer (the number of processes, one per "
                          f"GPU), got '{nproc}'; usage: bash {os.path.join(ROOT, 'tools', script)} CONFIG NUM_PROCS "
                          "[ARGS]\n")


def test_the_launchers_pass_the_count_as_a_plain_number(tmp_path):
    """A count with leading zeros is a number (torchrun reads '08' as 8, bash arithmetic would not)."""
    argv_python = tmp_path / "argv_python"
    argv_python.write_text("#!/usr/bin/env bash\nprintf '%s\\n' \"$@\"\n")
    argv_python.chmod(argv_python.stat().st_mode | stat.S_IXUSR)
    out = subprocess.run(["bash", os.path.join(ROOT, "tools", "dist_test.sh"), "cfg.py", "08", "--not_eval"],
                         env=_env(PYTHON=str(argv_python)), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    args = out.stdout.splitlines()
    assert "--nproc_per_node=8" in args and args[-2:] == ["cfg.py", "--not_eval"]


# tools/train.py and tools/test.py run as modules (not __main__), then report what torch got
PROBE = textwrap.dedent("""
    import json, os, runpy, sys
    runpy.run_path(sys.argv[1], run_name="probe")
    import torch
    print(json.dumps(dict(omp=os.environ.get("OMP_NUM_THREADS"), wait=os.environ.get("OMP_WAIT_POLICY"),
                          threads=torch.get_num_threads())))
""")


@pytest.mark.parametrize("tool, local", [("train.py", None), ("test.py", "2")])
def test_the_python_entry_points_set_threads_before_torch_loads(tool, local):
    env = _env() if local is None else _env(LOCAL_WORLD_SIZE=local)
    out = subprocess.run([sys.executable, "-c", PROBE, os.path.join(ROOT, "tools", tool)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    omp, wait = _expected(1 if local is None else int(local))
    assert (got["omp"], got["wait"], got["threads"]) == (omp, wait, int(omp))
