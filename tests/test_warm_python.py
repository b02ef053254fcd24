"""tests/warm_python.py (the ``warm_python`` fixture) against the reference: the same scripts run by a fresh
``python SCRIPT ARGS``. What a script sees (argv, working directory, ``sys.path[0]``, which of the
repository's modules are loaded), its exit status and its output must be the same both ways."""
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = textwrap.dedent("""
    import atexit, json, os, sys
    atexit.register(lambda: print("atexit ran"))
    loaded = sorted(m for m in ("opentad", "benchmarks", "_repo") if m in sys.modules)
    print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "path0": sys.path[0], "loaded": loaded,
                      "name": __name__}))
    try:
        import benchmarks  # beside opentad/, not installed: reachable only through sys.path
        print("benchmarks importable")
    except ImportError:
        print("benchmarks not importable")
    print("to stderr", file=sys.stderr)
    how = sys.argv[1]
    if how == "raise":
        raise ValueError("boom")
    if how == "message":
        sys.exit("a one-line refusal")
    if how.isdigit():
        sys.exit(int(how))
""")


@pytest.fixture
def scripts(tmp_path):
    """``(probe path, empty working folder)``: the probe in a folder of its own, run from another one."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "cwd").mkdir()
    probe = tmp_path / "bin" / "probe.py"
    probe.write_text(PROBE)
    return str(probe), str(tmp_path / "cwd")


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    return env


@pytest.mark.parametrize("preload", [(), ("torch",)], ids=["nothing", "torch"])
def test_every_job_sees_and_does_what_a_fresh_interpreter_would(scripts, tmp_path, warm_python, preload):
    probe, cwd = scripts
    modes = ["0", "3", "message", "raise", "none"]
    warm = warm_python([([probe, mode], cwd) for mode in modes], folder=tmp_path, env=_env(), preload=preload)
    for mode, got in zip(modes, warm):
        fresh = subprocess.run([sys.executable, probe, mode], cwd=cwd, env=_env(), capture_output=True, text=True,
                               timeout=300)
        assert got.returncode == fresh.returncode, (mode, got.stderr)
        assert got.stdout == fresh.stdout, mode
        # a traceback names the same lines; only the frames above the script (runpy's) differ
        if mode == "raise":
            assert got.stderr.startswith("to stderr\nTraceback") and fresh.stderr.startswith("to stderr\nTraceback")
            assert got.stderr.splitlines()[-1] == fresh.stderr.splitlines()[-1] == "ValueError: boom"
        else:
            assert got.stderr == fresh.stderr, mode


def test_the_expected_results_of_the_probe(scripts, tmp_path, warm_python):
    """Hand-worked: what the probe must print (so the comparison above is not two equal failures)."""
    probe, cwd = scripts
    (result,) = warm_python([([probe, "7"], cwd)], folder=tmp_path, env=_env(), preload=())
    lines = result.stdout.splitlines()
    assert result.returncode == 7
    assert lines[0] == ('{"argv": ["7"], "cwd": "%s", "path0": "%s", "loaded": [], "name": "__main__"}'
                        % (cwd, os.path.dirname(probe)))
    assert lines[1:] == ["benchmarks not importable", "atexit ran"]
    assert result.stderr == "to stderr\n"


def test_a_failing_runner_names_itself(tmp_path, warm_python):
    with pytest.raises(AssertionError, match="tests/warm_python.py failed"):
        warm_python([], folder=tmp_path, env=_env(), preload=("no_such_module_here",))
