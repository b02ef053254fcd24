"""Puts the repository root on ``sys.path``: ``python tools/benchmark_*.py`` then imports :mod:`benchmarks`.

``benchmarks/`` sits beside ``opentad/`` and is not installed with it; each
benchmark tool imports this module first.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
