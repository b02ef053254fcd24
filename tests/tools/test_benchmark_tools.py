"""The benchmark tools are thin: ``python tools/benchmark_*.py`` finds the ``benchmarks`` package from any
working directory (``tools/_repo.py``), parses its options and calls the package."""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = sorted(glob.glob(os.path.join(ROOT, "tools", "benchmark_*.py")))


def _run(tool, args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONPATH", None)  # only what the tool itself puts on sys.path
    return subprocess.run([sys.executable, tool, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_documented_backbone_smoke_command_runs_outside_the_repository(tmp_path):
    result = _run(os.path.join(ROOT, "tools", "benchmark_backbone.py"),
                  ["--sizes", "tiny", "--frames", "32", "--img-size", "32", "--steps", "2", "--warmup", "1",
                   "--device", "cpu"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| tiny | 32 |")]
    assert [row.split("|")[3].strip() for row in rows] == ["adapter", "frozen", "fullft"]


def test_a_bad_option_is_one_line_naming_it(tmp_path):
    result = _run(os.path.join(ROOT, "tools", "benchmark_backbone.py"), ["--sizes", "xl"], cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.strip() == "unknown sizes ['xl']; choose from " \
        "['b', 'g', 'h', 'l', 's', 'tiny']"


@pytest.fixture(scope="module")
def help_results(warm_python, tmp_path_factory):
    """``{tool: result}`` of ``python TOOL --help`` run from an empty folder outside the repository, no PYTHONPATH.

    One interpreter imports torch and mmengine once and forks a child per tool (``tests/warm_python.py``): each
    child has only the tool's folder on ``sys.path``, as ``python TOOL`` would, and none of the repository's
    modules loaded, so a tool still has to find the ``benchmarks`` package itself.
    """
    folder = tmp_path_factory.mktemp("help_cwd")
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONPATH", None)  # only what the tool itself puts on sys.path
    results = warm_python([([tool, "--help"], folder) for tool in TOOLS], folder=folder, env=env)
    return dict(zip(TOOLS, results))


@pytest.mark.slow
@pytest.mark.parametrize("tool", TOOLS, ids=os.path.basename)
def test_every_tool_answers_help_from_another_folder(tool, help_results):
    result = help_results[tool]
    assert result.returncode == 0 and result.stdout.startswith("usage: "), result.stderr[-2000:]
