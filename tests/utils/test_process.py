"""Thread defaults, liveness of process ids, workers that end with their launcher, and the CPU description."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from opentad.utils import process
from opentad.utils.process import (
    apply_thread_defaults,
    cgroup_cpu_limit,
    default_thread_count,
    local_process_count,
    pid_alive,
    usable_cores,
    watch_launcher,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("cores, processes, threads", [(2, 1, 2), (2, 2, 1), (1, 2, 1), (16, 3, 5), (16, 1, 16)])
def test_default_thread_count_shares_the_cores(cores, processes, threads):
    assert default_thread_count(cores=cores, processes=processes) == threads


def _cgroup(tmp_path, files, own="/"):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "self_cgroup").write_text(f"4:memory:/x\n0::{own}\n")
    return cgroup_cpu_limit(root=str(tmp_path), proc_cgroup=str(tmp_path / "self_cgroup"))


@pytest.mark.parametrize("files, own, cores", [
    ({"cpu.max": "150000 100000\n"}, "/", 2),  # 1.5 cores of time: 2 busy processes at most
    ({"cpu.max": "50000 100000"}, "/", 1),
    ({"cpu.max": "400000 100000"}, "/", 4),
    ({"cpu.max": "max 100000"}, "/", None),
    ({"box/cpu.max": "200000 100000", "cpu.max": "max 100000"}, "/box", 2),  # this process's own cgroup first
    ({"cpu/cpu.cfs_quota_us": "300000", "cpu/cpu.cfs_period_us": "100000"}, "/", 3),  # cgroup v1
    ({"cpu,cpuacct/cpu.cfs_quota_us": "-1", "cpu,cpuacct/cpu.cfs_period_us": "100000"}, "/", None),
    ({"cpu.max": "lots 100000"}, "/", None),
    ({"cpu.max": "100000 0"}, "/", None),
    ({}, "/", None),
])
def test_cgroup_cpu_limit_reads_the_quota_of_cgroup_v2_or_v1(tmp_path, files, own, cores):
    assert _cgroup(tmp_path, files, own) == cores


@pytest.mark.parametrize("limit", [None, 1, 10**6])
def test_usable_cores_is_the_affinity_capped_by_the_quota(monkeypatch, limit):
    monkeypatch.setattr(process, "cgroup_cpu_limit", lambda: limit)
    mask = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert usable_cores() == (mask if limit is None else min(mask, limit))


def test_local_process_count_reads_torchrun_and_names_a_bad_value():
    assert local_process_count({}) == 1
    assert local_process_count({"LOCAL_WORLD_SIZE": "4"}) == 4
    with pytest.raises(ValueError, match="LOCAL_WORLD_SIZE='two'"):
        local_process_count({"LOCAL_WORLD_SIZE": "two"})


def test_nothing_is_set_once_torch_is_loaded_or_when_the_user_chose():
    import torch  # noqa: F401  (this test process has torch: the defaults would no longer apply)

    env = {}
    assert apply_thread_defaults(env) == {} and env == {}


CHILD = textwrap.dedent("""
    import json, os, sys
    from opentad.utils.process import apply_thread_defaults
    chosen = apply_thread_defaults()
    import torch
    from opentad.utils.process import cgroup_cpu_limit
    cores = len(os.sched_getaffinity(0))
    limit = cgroup_cpu_limit()
    cores = cores if limit is None else min(cores, limit)
    print(json.dumps(dict(chosen=chosen, threads=torch.get_num_threads(), cores=cores,
                          omp=os.environ.get("OMP_NUM_THREADS"), wait=os.environ.get("OMP_WAIT_POLICY"))))
""")


def _child(**env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "LOCAL_WORLD_SIZE")}
    env.update(env_overrides)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs os.sched_getaffinity")
@pytest.mark.parametrize("local", [None, "2"])
def test_a_fresh_process_gets_its_share_of_the_cores_before_torch_loads(local):
    got = _child(**({} if local is None else {"LOCAL_WORLD_SIZE": local}))
    want = max(1, got["cores"] // (1 if local is None else 2))
    assert got["omp"] == str(want) and got["threads"] == want
    assert got["wait"] == ("PASSIVE" if want > 1 else None)


def test_a_users_value_is_kept():
    got = _child(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="ACTIVE")
    assert got["chosen"] == {} and got["threads"] == 1 and got["wait"] == "ACTIVE"


def test_pid_alive_tells_running_from_exited_and_zombie_processes():
    assert pid_alive(os.getpid()) and not pid_alive(0) and not pid_alive(-1)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while pid_alive(child.pid) and time.monotonic() < deadline:  # a zombie until reaped: not alive
            time.sleep(0.05)
        assert not pid_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid)  # reaped


def test_watch_launcher_is_off_outside_torchrun():
    assert watch_launcher(environ={}) is None


# A "launcher" (in a session of its own, like torchrun's workers) starts a "worker" that watches it, then sleeps.
LAUNCHER = textwrap.dedent("""
    import subprocess, sys, time
    worker = subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=True)
    print(worker.pid, flush=True)
    time.sleep(120)
""")
WORKER = textwrap.dedent("""
    import time
    from opentad.utils.process import watch_launcher
    watch_launcher(poll_s=0.1)
    open({ready!r}, "w").close()
    time.sleep(120)
""")


def _wait_gone(pid, seconds):
    deadline = time.monotonic() + seconds
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not pid_alive(pid)


def test_a_worker_ends_when_its_launcher_is_killed_with_sigkill(tmp_path):
    ready = tmp_path / "ready"
    env = dict(os.environ, TORCHELASTIC_RUN_ID="test")
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, WORKER.format(ready=str(ready))], env=env,
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
    worker = int(launcher.stdout.readline())
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists()
        launcher.kill()
        launcher.wait()
        assert _wait_gone(worker, 5.0), "the worker outlived its launcher"
    finally:
        if pid_alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_worker_whose_launcher_died_before_it_started_ends_at_once(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    env = dict(os.environ, TORCHELASTIC_RUN_ID="test", OPENTAD_LAUNCHER_PID=str(gone.pid))
    code = "from opentad.utils.process import watch_launcher; watch_launcher(); import time; time.sleep(60)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGTERM
    assert f"the launcher (pid {gone.pid}) died before this worker started" in result.stderr


def test_cpu_description_names_the_model_its_vector_extensions_and_the_held_instruction_set(tmp_path):
    """From a two-processor cpuinfo: the first model name, the extensions of interest in a fixed order, the three
    variables as set or ``unset``; a machine without AVX2 says so; without cpuinfo the model comes from
    ``platform`` and no extensions are listed."""
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx512f sse avx2 avx512_bf16\n\n"
                    "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n")
    env = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
    assert process.cpu_description(str(info), env) == (
        "AMD EPYC 9R14 (avx2, avx512f, avx512_bf16); ATEN_CPU_CAPABILITY=avx2, MKL_CBWR=AVX2, "
        "ONEDNN_MAX_CPU_ISA=unset")
    info.write_text("model name\t: Old\nflags\t\t: fpu sse2\n")
    assert process.cpu_description(str(info), {}).startswith("Old (no AVX2); ATEN_CPU_CAPABILITY=unset")
    missing = process.cpu_description(str(tmp_path / "absent"), {})
    assert "(" not in missing.split(";")[0] and missing.endswith("ONEDNN_MAX_CPU_ISA=unset")
