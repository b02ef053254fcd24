"""Test a temporal action detector on the config's test split.

One process:      python tools/test.py CONFIG [--checkpoint CKPT] [--not_eval] [--cfg-options k=v ...]
Several (torchrun): bash tools/dist_test.sh CONFIG NUM_GPUS [ARGS]
See docs/usage.md.
"""
from opentad.cores.runner import test

if __name__ == "__main__":
    test()
