"""The random numbers every random transform draws.

All draws come from torch's default CPU generator. It is seeded by the global
seed (``torch.manual_seed``, which any run-level seeding calls), and a
``DataLoader`` reseeds it in each worker (``base_seed + worker_id``), so
workers never repeat each other's augmentations -- unlike numpy's or
Python's global generators, which forked workers inherit unchanged. Tests
seed with ``torch.manual_seed`` to replay a draw.
"""
from __future__ import annotations

import math

import torch

__all__ = ["randint", "uniform", "log_uniform", "rand"]


def randint(low: int, high: int) -> int:
    """A uniform integer in the closed range ``[low, high]``."""
    if high < low:
        raise ValueError(f"randint: empty range [{low}, {high}]")
    return int(torch.randint(int(low), int(high) + 1, (1,)).item())


def rand() -> float:
    """A uniform float in ``[0, 1)``."""
    return float(torch.rand(()).item())


def uniform(low: float, high: float) -> float:
    """A uniform float in ``[low, high)``."""
    return low + (high - low) * rand()


def log_uniform(low: float, high: float) -> float:
    """A float whose log is uniform in ``[log(low), log(high))``."""
    return math.exp(uniform(math.log(low), math.log(high)))
