"""bitsandbytes' missing-'kernels' warning is logged at DEBUG; every other record is left alone.

The filter is checked on records logged by hand (any CPU). Importing the
registry installs it, before anything imports bitsandbytes (the quantized
layers, or mmengine's optimizer registry ``mmengine.optim`` for an optimizer
that is not a ``torch.optim`` class): a fresh interpreter that looks up
``AdamW`` and then imports bitsandbytes must print nothing, while
``import mmengine.optim`` on its own prints the warning on CPUs with
AVX512-BF16 (the control).
"""
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from opentad.utils import bnb_log
from opentad.utils.bnb_log import KERNELS_LOGGER, KERNELS_MESSAGE, lower_optional_kernel_notice

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTICE = KERNELS_MESSAGE + ": %s. Please make sure you already `pip install kernels`"


@pytest.fixture
def kernels_logger():
    """bitsandbytes' CPU logger with a handler collecting ``(levelname, message)``; restored afterwards."""
    log = logging.getLogger(KERNELS_LOGGER)
    records = []
    handler = logging.Handler(logging.NOTSET)
    handler.emit = lambda record: records.append((record.levelname, record.getMessage()))
    old_level, old_propagate = log.level, log.propagate
    log.addHandler(handler)
    log.propagate = False
    yield log, records
    log.removeHandler(handler)
    log.setLevel(old_level)
    log.propagate = old_propagate


def test_the_filter_lowers_exactly_that_record(kernels_logger):
    log, records = kernels_logger
    lower_optional_kernel_notice()
    lower_optional_kernel_notice()  # installed once
    assert sum(isinstance(f, bnb_log._OptionalKernelAtDebug) for f in log.filters) == 1
    log.setLevel(logging.WARNING)
    log.warning(NOTICE, "No module named 'kernels'")
    log.warning("Some other bitsandbytes warning")
    assert records == [("WARNING", "Some other bitsandbytes warning")]
    records.clear()
    log.setLevel(logging.DEBUG)
    log.warning(NOTICE, "No module named 'kernels'")
    log.error(NOTICE, "an error is not lowered")
    assert records == [
        ("DEBUG", f"{KERNELS_MESSAGE}: No module named 'kernels'. Please make sure you already `pip install kernels`"),
        ("ERROR", f"{KERNELS_MESSAGE}: an error is not lowered. Please make sure you already `pip install kernels`"),
    ]


SCRIPT = textwrap.dedent("""
    import importlib.util, json, sys
    sys.path.insert(0, {root!r})
    {lookup}
    import bitsandbytes
    print(json.dumps(bitsandbytes.functional.has_avx512bf16() and importlib.util.find_spec("kernels") is None))
""")


def _run(lookup):
    code = SCRIPT.format(root=ROOT, lookup=lookup)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1] == "true", out.stderr


def test_the_optimizer_registry_imports_bitsandbytes_quietly():
    _, stderr = _run("from opentad.registry import OPTIMIZERS; assert OPTIMIZERS.get('AdamW') is not None")
    assert KERNELS_MESSAGE not in stderr, stderr
    emitted, stderr_plain = _run("import mmengine.optim")  # the control: what every run printed before
    assert (KERNELS_MESSAGE in stderr_plain) == emitted
