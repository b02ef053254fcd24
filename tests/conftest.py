"""Fixtures shared across the test tree."""
import os
import runpy

import pytest
import torch

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")


@pytest.fixture
def seeded():
    """Seed torch's default generator (the transforms' randomness) and restore it after."""
    state = torch.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.set_rng_state(state)


@pytest.fixture
def load_tool(monkeypatch):
    """``load_tool("benchmark_ddp")``: the globals of ``tools/<name>.py`` (its ``main`` not run).

    ``tools/`` is on ``sys.path`` for the test only, as it is for ``python tools/<name>.py``
    (the benchmark tools import ``tools/_repo.py`` from there).
    """
    monkeypatch.syspath_prepend(TOOLS)
    return lambda name: runpy.run_path(os.path.join(TOOLS, f"{name}.py"))
