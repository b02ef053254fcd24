"""Running a Triton kernel's check script (``*_cases.py``) in a fresh interpreter, for the kernel tests.

Triton chooses its CPU interpreter when it is first imported (``TRITON_INTERPRET=1``), so the checks run in
a child process with the environment set; each prints ``ok <check>`` per check and ``all N checks passed``.
"""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
#: checks passed so far in a check script (its last line reports the count, which :func:`run_cases` compares)
CHECKS = [0]


def check(name: str, ok: bool) -> None:
    """One check of a check script: prints ``ok <name>``, or exits with status 1 and ``FAILED <name>``."""
    if not ok:
        raise SystemExit(f"FAILED {name}")
    CHECKS[0] += 1
    print(f"ok {name}", flush=True)


def check_refused(cases) -> None:
    """One check per ``(name, call)``: ``call()`` raises ValueError (``"<name> refused"``)."""
    for name, call in cases:
        try:
            call()
        except ValueError:
            check(f"{name} refused", True)
        else:
            check(f"{name} refused", False)


def run_cases(script: Path, device: str, interpret: bool, at_least: int) -> str:
    """Run ``script --device device`` and assert it passed at least ``at_least`` checks; returns its stdout.

    Args:
        script: the check script.
        device: ``"cpu"`` (with ``interpret``: Triton's interpreter) or ``"cuda"`` (compiled kernels, with
            deterministic cuBLAS: the scripts compare runs bitwise).
        interpret: set ``TRITON_INTERPRET=1`` in the child.
        at_least: the fewest ``ok`` lines a full run prints (a run that silently checks less fails).
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("TRITON_INTERPRET", None)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    else:
        env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    done = subprocess.run([sys.executable, str(script), "--device", device], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines, f"{script.name} printed nothing: {done.stderr[-3000:]}"
    passed = [line for line in lines if line.startswith("ok ")]
    assert lines[-1] == f"all {len(passed)} checks passed" and len(passed) >= at_least, done.stdout[-3000:]
    return done.stdout
