"""Test a temporal action detector on the config's test split.

One process:      python tools/test.py CONFIG [--checkpoint CKPT] [--not_eval] [--cfg-options k=v ...] [--debug]
Several (torchrun): bash tools/dist_test.sh CONFIG NUM_GPUS [ARGS]
Bad input (config, checkpoint files, arguments) stops with one line on stderr, exit status 1
(2 for a malformed command line); --debug shows the stack trace. See docs/usage.md.
"""
import sys

from opentad.utils.process import apply_thread_defaults, watch_launcher

apply_thread_defaults()  # before torch loads: OMP_NUM_THREADS = usable cores // local processes (docs/ddp.md)
watch_launcher()  # a torchrun worker ends when its launcher dies

from opentad.cores.launch import run_cli  # noqa: E402
from opentad.cores.runner import test  # noqa: E402

if __name__ == "__main__":
    status = run_cli(test)
    if status:  # exit only on failure: runpy callers (tests) get a plain return on success
        sys.exit(status)
