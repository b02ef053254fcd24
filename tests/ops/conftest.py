"""Compiled-op fixtures.

The compiled ops are used when the package was installed with
``OPENTAD_EXT=auto`` (or ``all``). Building them takes one to several
minutes, so the tests do not build them unless ``OPENTAD_TEST_BUILD_OPS=1``:
then a session fixture compiles the missing CPU ops into a temporary folder
and adds it to ``opentad.ops.__path__``. Tests of a compiled op skip when it
is not available.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import opentad.ops as ops

ROOT = Path(__file__).resolve().parents[2]


def _build_into(folder: Path) -> None:
    env = dict(os.environ, OPENTAD_EXT="auto")
    command = [
        sys.executable,
        "setup.py",
        "-q",
        "build_ext",
        "--build-lib",
        str(folder / "lib"),
        "--build-temp",
        str(folder / "temp"),
    ]
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    built = folder / "lib" / "opentad" / "ops"
    if built.is_dir():
        ops.__path__.append(str(built))
        ops.clear_cache()


@pytest.fixture(scope="session")
def native_ops(tmp_path_factory):
    """Names of the compiled ops available in this session (building them first if asked)."""
    missing = [s.name for s, ok, _ in ops.op_status() if not ok and s.device == "cpu"]
    if missing and os.environ.get("OPENTAD_TEST_BUILD_OPS") == "1":
        _build_into(tmp_path_factory.mktemp("native_ops"))
    return {s.name for s, ok, _ in ops.op_status() if ok}


@pytest.fixture
def require_op(native_ops):
    """Call with an op name; skips the test when that op is not compiled."""

    def check(name: str) -> None:
        if name not in native_ops:
            pytest.skip(
                f"compiled op {name} is not built (install with OPENTAD_EXT=auto, or set OPENTAD_TEST_BUILD_OPS=1)"
            )

    return check


@pytest.fixture
def hidden_ops(monkeypatch):
    """Make every compiled op fail to import, as on a machine that never built them."""
    for spec in ops.OP_SPECS:
        monkeypatch.setitem(sys.modules, spec.module, None)
    ops.clear_cache()
    yield
    ops.clear_cache()
