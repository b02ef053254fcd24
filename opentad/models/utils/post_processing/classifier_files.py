"""Reading the score files of the external classifiers (:mod:`.classifier`), and their error.

A file that cannot be used (unreadable, a wrong layout, non-finite scores,
a video it lacks) raises :class:`ClassifierFileError` naming the file and
what is expected.
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

__all__ = ["ClassifierFileError", "finite_vector", "read_json"]


class ClassifierFileError(ValueError):
    """A classifier score file that cannot be used: unreadable, wrong layout, or lacking a video."""


def read_json(path: str, expected: str) -> Any:
    """The JSON content of ``path``; ``expected`` describes the layout, for messages.

    Raises:
        FileNotFoundError: no file at ``path``.
        ClassifierFileError: the file cannot be read or is not JSON.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"External classifier file not found: {path} (expected {expected})")
    try:
        with open(path, encoding="utf8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClassifierFileError(f"{path}: unreadable ({exc}); expected {expected}") from exc


def finite_vector(value: Any, size: int, where: str) -> np.ndarray:
    """``value`` as float64 ``[size]``; raises ClassifierFileError (naming ``where``) otherwise."""
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        vector = None
    if vector is None or vector.shape != (size,):
        raise ClassifierFileError(f"{where}: expected a list of {size} numbers (one per class), got {value!r:.80}")
    if not np.isfinite(vector).all():
        raise ClassifierFileError(f"{where}: scores must be finite numbers, got {value!r:.80}")
    return vector
