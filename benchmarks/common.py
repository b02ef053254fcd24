"""What several benchmarks share: the repository root and a device synchronisation before reading a clock."""
import os

import torch

__all__ = ["ROOT", "sync"]

#: the repository root (configs are read relative to it)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sync(device: torch.device) -> None:
    """Wait for ``device``'s queued kernels (CUDA); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
