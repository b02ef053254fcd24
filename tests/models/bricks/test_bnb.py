"""bitsandbytes is imported by this project in one place, which lowers its missing-'kernels' warning to DEBUG.

The real import runs in fresh interpreters: the warning is emitted once, when
bitsandbytes' CPU back-end is first imported, and only on CPUs with
AVX512-BF16 without the optional ``kernels`` package; the control run (a plain
``import bitsandbytes``) shows that the warning does appear on such a machine,
so the check is not vacuous there (tests/utils/test_bnb_log.py checks the
filter on any CPU).
"""
import ast
import os
import subprocess
import sys
import textwrap

from opentad.utils.bnb_log import KERNELS_LOGGER, KERNELS_MESSAGE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# the last line printed: whether this machine makes bitsandbytes log the warning (AVX512-BF16, no 'kernels')
SCRIPT = textwrap.dedent("""
    import importlib.util, json, logging, sys
    sys.path.insert(0, {root!r})
    if {debug}:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s %(message)s")
    if {routed}:  # a quantized layer, built and run: the project's own import of bitsandbytes
        import torch
        from opentad.models.bricks.quant import QuantSpec, quantize_linear
        quantize_linear(torch.nn.Linear(64, 64), QuantSpec())(torch.zeros(1, 64))
    import bitsandbytes
    print(json.dumps(bitsandbytes.functional.has_avx512bf16() and importlib.util.find_spec("kernels") is None))
""")


def run_scripts(script, *settings):
    """Run ``script`` once per ``settings`` dict, each in a fresh interpreter, all at once (each spends its time
    importing torch); per run ``(does this machine emit the warning, stderr)``."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    running = [subprocess.Popen([sys.executable, "-c", script.format(root=ROOT, **fields)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env) for fields in settings]
    results = []
    try:
        for process in running:
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr[-2000:]
            results.append((stdout.strip().splitlines()[-1] == "true", stderr))
    finally:  # a failed check leaves no interpreter behind
        for process in running:
            process.kill()
            process.wait()
    return results


def test_a_quantized_layer_leaves_no_kernels_warning_on_stderr():
    (emitted, stderr), (_, stderr_debug), (emitted_plain, stderr_plain) = run_scripts(
        SCRIPT, dict(routed=True, debug=False), dict(routed=True, debug=True),  # DEBUG: still there for who asks
        dict(routed=False, debug=False))  # the control
    assert KERNELS_MESSAGE not in stderr and "pip install kernels" not in stderr
    lines = [line for line in stderr_debug.splitlines() if KERNELS_MESSAGE in line]
    assert lines == ([f"DEBUG {KERNELS_LOGGER} {KERNELS_MESSAGE}: No module named 'kernels'. Please make sure you "
                      "already `pip install kernels` and the kernels >= 0.11.1"] if emitted else [])
    assert (KERNELS_MESSAGE in stderr_plain) == emitted_plain


def _bitsandbytes_imports(tree):
    """Line numbers of ``import bitsandbytes``, ``from bitsandbytes ...`` and ``import_module("bitsandbytes")``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "bitsandbytes" for a in node.names):
            yield node.lineno
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "bitsandbytes":
            yield node.lineno
        elif isinstance(node, ast.Call) and any(
                isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] == "bitsandbytes" for arg in node.args):
            yield node.lineno


def test_only_the_bnb_module_imports_bitsandbytes():
    """Another import could run first and let the warning through."""
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, "opentad")):
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            tree = ast.parse(open(path, encoding="utf8").read())
            found += [(os.path.relpath(path, ROOT), line) for line in _bitsandbytes_imports(tree)]
    assert found and {path for path, _ in found} == {os.path.join("opentad", "models", "bricks", "bnb.py")}, found
