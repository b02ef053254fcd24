"""Run several Python scripts as if each were ``python SCRIPT ARGS``, paying the heavy imports once.

Usage (a subprocess of the tests, never imported by them)::

    python tests/warm_python.py JOBS.json RESULTS.json

``JOBS.json``: ``{"preload": ["torch", ...], "jobs": [{"argv": [script, arg, ...], "cwd": folder}, ...]}``.
The process imports the ``preload`` modules (third-party ones only: the
scripts' own packages must stay unimported), then forks one child per job.
Each child starts from that state, like a fresh interpreter that had
already imported those modules: ``sys.argv`` is the job's, ``sys.path[0]``
is the script's folder (what ``python SCRIPT`` puts there), the working
directory is the job's, and file descriptors 1 and 2 go to files of their
own. The script runs as ``__main__``; an uncaught exception prints its
traceback and exits 1 and ``SystemExit`` exits with its code, as the
interpreter's top level does; ``atexit`` functions run.

``RESULTS.json``: one ``{"returncode", "stdout", "stderr"}`` per job, in order.

Not for tests about what happens before a module loads (thread variables
read at ``import torch``, import-time warnings): the preloaded modules
loaded before the script ran.
"""
import atexit
import importlib
import json
import os
import runpy
import sys
import tempfile
import traceback


def _exit_code(exc: SystemExit) -> int:
    """The status the interpreter exits with for ``exc`` (a non-integer code is printed, status 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _child(argv: list, cwd: str, out_fd: int, err_fd: int) -> None:
    """Run one script in this (forked) process and leave with its exit status; never returns."""
    code = 1
    try:
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.chdir(cwd)
        sys.argv = list(argv)
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        try:
            runpy.run_path(argv[0], run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        except BaseException:  # noqa: BLE001 - the interpreter's top level: traceback, status 1
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed stream: nothing left to write
                pass
        os._exit(code)


def run_job(argv: list, cwd: str) -> dict:
    """Fork, run ``argv`` in the child, wait; its status and what it wrote to stdout and stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(argv, cwd, out.fileno(), err.fileno())
        _, status = os.waitpid(pid, 0)
        texts = []
        for handle in (out, err):
            handle.seek(0)
            texts.append(handle.read().decode("utf8", errors="replace"))
    return {"returncode": os.waitstatus_to_exitcode(status), "stdout": texts[0], "stderr": texts[1]}


def main(jobs_file: str, results_file: str) -> None:
    with open(jobs_file, encoding="utf8") as handle:
        spec = json.load(handle)
    for name in spec.get("preload", []):
        importlib.import_module(name)
    results = [run_job(job["argv"], job["cwd"]) for job in spec["jobs"]]
    with open(results_file, "w", encoding="utf8") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main(*sys.argv[1:])
