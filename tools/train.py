"""Train a temporal action detector.

One process:      python tools/train.py CONFIG [--seed 42] [--id 0] [--resume CKPT] [--cfg-options k=v ...]
Several (torchrun): bash tools/dist_train.sh CONFIG NUM_GPUS [ARGS]
See docs/usage.md.
"""
from opentad.cores.runner import train

if __name__ == "__main__":
    train()
