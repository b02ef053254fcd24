"""The modules of ``tools/prepare_data/custom/`` imported as ``python tools/prepare_data/custom/<tool>.py`` runs them.

The converter imports its sibling ``check_dataset`` by name (the script's folder is on ``sys.path``);
the fixture puts the folder first on ``sys.path`` and drops any module of that name imported from
elsewhere, both for the test only.
"""
import importlib
import os
import sys
from types import SimpleNamespace

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
CUSTOM = os.path.join(ROOT, "tools", "prepare_data", "custom")


@pytest.fixture
def custom_tools(monkeypatch):
    """``convert`` (convert_annotations.py) and ``check`` (check_dataset.py) as modules."""
    monkeypatch.syspath_prepend(CUSTOM)
    for name in ("check_dataset", "convert_annotations"):
        if name in sys.modules and os.path.dirname(getattr(sys.modules[name], "__file__", "")) != CUSTOM:
            monkeypatch.delitem(sys.modules, name)
    return SimpleNamespace(convert=importlib.import_module("convert_annotations"),
                           check=importlib.import_module("check_dataset"))
