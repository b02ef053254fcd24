"""Process-level set-up of the entry points: CPU thread defaults and ending with the launcher.

Nothing here imports torch: :func:`apply_thread_defaults` must run before
torch is imported (OpenMP reads its environment once, when torch loads).

* :func:`usable_cores`: the affinity mask's cores, capped by a cgroup CPU
  quota (:func:`cgroup_cpu_limit`: a container's share of a larger host).
* :func:`apply_thread_defaults`: without ``OMP_NUM_THREADS``, each process
  gets ``usable cores // local processes`` threads (at least 1), and, when
  that is more than 1, passive waiting (``OMP_WAIT_POLICY=PASSIVE``): on a
  shared, loaded machine spinning OpenMP threads made a 2-thread run about
  10x slower than a 1-thread one (docs/ddp.md, "CPU threads").
* :func:`watch_launcher`: a torchrun worker runs in a session of its own, so
  a launcher killed with ``kill -9`` would leave it training; a daemon thread
  ends the worker (SIGTERM to itself) once its parent is gone.
* :func:`pid_alive`: whether a process id is a live (not zombie) process of this host.
* :func:`cpu_description`: the CPU's model and vector extensions and the variables that hold the math libraries'
  kernels to one instruction set, for the run's log (the quick start's table depends on the CPU: docs/qlora.md).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Dict, MutableMapping, Optional

__all__ = [
    "LAUNCHER_PID_VAR",
    "cpu_description",
    "cgroup_cpu_limit",
    "usable_cores",
    "local_process_count",
    "default_thread_count",
    "apply_thread_defaults",
    "pid_alive",
    "watch_launcher",
]

logger = logging.getLogger(__name__)

#: set by tools/dist_train.sh and tools/dist_test.sh to torchrun's pid (the workers' parent)
LAUNCHER_PID_VAR = "OPENTAD_LAUNCHER_PID"


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _own_cgroup(proc_cgroup: str) -> str:
    """This process's cgroup v2 path (``"0::/a/b"`` in ``/proc/self/cgroup``), or ``""``."""
    for line in (_read(proc_cgroup) or "").splitlines():
        if line.startswith("0::"):
            return line[3:].strip("/")
    return ""


def cgroup_cpu_limit(root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup") -> Optional[int]:
    """Whole cores the cgroup's CPU quota gives this process, ``ceil(quota / period)``, or None (no quota).

    A container may see many cores and be allowed the time of few: its quota,
    not its affinity mask, then says how many busy processes it can run.
    Reads cgroup v2's ``cpu.max`` (``"150000 100000"``; ``"max ..."``: none) of
    this process's cgroup, then of ``root``; else cgroup v1's
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1: none).
    Unreadable or malformed files count as no quota.

    Args:
        root: where the cgroup file system is mounted.
        proc_cgroup: the file naming this process's cgroups.
    """
    own = _own_cgroup(proc_cgroup)
    v2_files = ([os.path.join(root, own, "cpu.max")] if own else []) + [os.path.join(root, "cpu.max")]
    pairs = [(text.split() + [""])[:2] for text in map(_read, v2_files) if text]
    for v1 in ("cpu", "cpu,cpuacct"):
        pairs.append([_read(os.path.join(root, v1, f"cpu.cfs_{key}_us")) or "" for key in ("quota", "period")])
    for quota, period in pairs:
        if quota.isdigit() and period.isdigit() and int(quota) > 0 and int(period) > 0:
            return max(1, -(-int(quota) // int(period)))
        if quota == "max" or quota == "-1":
            return None
    return None


def usable_cores() -> int:
    """CPU cores this process may keep busy: its affinity mask (else all cores), capped by a cgroup CPU quota."""
    if hasattr(os, "sched_getaffinity"):
        cores = max(1, len(os.sched_getaffinity(0)))
    else:
        cores = max(1, os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    return cores if limit is None else min(cores, limit)


def local_process_count(environ: Optional[MutableMapping[str, str]] = None) -> int:
    """Processes of this run on this host: torchrun's ``LOCAL_WORLD_SIZE``, else 1.

    Raises:
        ValueError: ``LOCAL_WORLD_SIZE`` is set but not a positive integer.
    """
    env = os.environ if environ is None else environ
    value = env.get("LOCAL_WORLD_SIZE")
    if value is None:
        return 1
    if not value.strip().isdigit() or int(value) < 1:
        raise ValueError(f"environment variable LOCAL_WORLD_SIZE={value!r} is not a positive integer")
    return int(value)


def default_thread_count(*, cores: int, processes: int) -> int:
    """``cores // processes``, at least 1: the host's cores shared evenly by the run's processes."""
    return max(1, cores // max(1, processes))


def apply_thread_defaults(environ: Optional[MutableMapping[str, str]] = None) -> Dict[str, str]:
    """Set ``OMP_NUM_THREADS`` (and ``OMP_WAIT_POLICY``) where the user has not.

    Call before torch is imported; once torch is loaded this does nothing
    (the values would no longer apply), and values already in the
    environment are never changed.

    Args:
        environ: the environment to fill (default ``os.environ``).

    Returns:
        The variables set, e.g. ``{"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"}`` (empty if none).

    Raises:
        ValueError: see :func:`local_process_count`.
    """
    env = os.environ if environ is None else environ
    if "torch" in sys.modules or env.get("OMP_NUM_THREADS"):
        return {}
    threads = default_thread_count(cores=usable_cores(), processes=local_process_count(env))
    chosen = {"OMP_NUM_THREADS": str(threads)}
    if threads > 1 and not env.get("OMP_WAIT_POLICY"):
        chosen["OMP_WAIT_POLICY"] = "PASSIVE"
    env.update(chosen)
    return chosen


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a process of this host that has not exited (a zombie counts as exited)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    if not os.path.isdir("/proc/self"):  # no procfs (not Linux): kill(pid, 0) is all there is
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()
    except OSError:  # exited (and was reaped) since the kill above
        return False
    return bool(state) and state[0] not in (b"Z", b"X")


def _end_this_process(reason: str) -> None:
    logger.warning("%s: ending this worker (pid %d)", reason, os.getpid())
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10.0)  # a SIGTERM handler that did not exit
    os._exit(143)


def _watch(parent: int, poll_s: float) -> None:
    while os.getppid() == parent:
        time.sleep(poll_s)
    _end_this_process(f"the launcher (pid {parent}) is gone")


def watch_launcher(
    *, poll_s: float = 0.5, environ: Optional[MutableMapping[str, str]] = None
) -> Optional[threading.Thread]:
    """Under torchrun, end this process (SIGTERM to itself) within ``poll_s`` of its launcher's death.

    torchrun starts each worker in a new session, so killing the launcher's
    process group does not reach the workers, and a launcher killed with
    SIGKILL cannot forward anything. The worker's parent is the launcher: a
    daemon thread polls ``os.getppid()`` and ends the worker when it changes.
    When ``OPENTAD_LAUNCHER_PID`` names a launcher that is already gone (it
    died before this thread started), the worker ends at once.

    Args:
        poll_s: seconds between checks.
        environ: the environment (default ``os.environ``); nothing happens
            without torchrun's ``TORCHELASTIC_RUN_ID``.

    Returns:
        The watching thread, or None outside torchrun.
    """
    env = os.environ if environ is None else environ
    if "TORCHELASTIC_RUN_ID" not in env:
        return None
    parent = os.getppid()
    expected = env.get(LAUNCHER_PID_VAR, "")
    if expected.isdigit() and int(expected) != parent and not pid_alive(int(expected)):
        _end_this_process(f"the launcher (pid {expected}) died before this worker started")
    thread = threading.Thread(target=_watch, args=(parent, poll_s), name="opentad-launcher-watch", daemon=True)
    thread.start()
    return thread


#: the variables that hold PyTorch's, MKL's and oneDNN's CPU kernels to one instruction set (tools/quickstart.sh)
ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")
_VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def cpu_description(cpuinfo: str = "/proc/cpuinfo", environ: Optional[MutableMapping[str, str]] = None) -> str:
    """``"<model name> (<vector extensions>); ATEN_CPU_CAPABILITY=..., MKL_CBWR=..., ONEDNN_MAX_CPU_ISA=..."``.

    Args:
        cpuinfo: Linux's CPU description (first processor's ``model name`` and ``flags``); where it cannot be
            read, the model is ``platform.processor()`` and the extensions are not listed.
        environ: the environment (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    model, flags = "", None
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and flags is None:
                    flags = set(value.split())
    except OSError:
        pass
    if not model:
        import platform

        model = platform.processor() or platform.machine() or "unknown CPU"
    extensions = "" if flags is None else " ({})".format(", ".join(f for f in _VECTOR_FLAGS if f in flags) or "no AVX2")
    held = ", ".join(f"{name}={env.get(name, 'unset')}" for name in ISA_VARIABLES)
    return f"{model}{extensions}; {held}"

