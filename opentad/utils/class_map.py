"""The one reader of class maps: class names, one per line; the line number (from 0) is the class index.

Datasets, the evaluation and inference all read class maps through
:func:`read_class_map`, so a class map means the same everywhere.
"""
from __future__ import annotations

import os
from typing import List, Sequence, Union

__all__ = ["read_class_map"]


def read_class_map(source: Union[str, os.PathLike, Sequence[str]], *, key: str = "class_map") -> List[str]:
    """Class names from a class map file (blank lines skipped, line ends stripped) or a list of names.

    Args:
        source: the file, or the class names themselves.
        key: where ``source`` came from (a config key or an option), named in the messages.

    Returns:
        The names; the position of a name is its class index.

    Raises:
        FileNotFoundError: the file does not exist (names ``key`` and the path).
        ValueError: no class, a class listed twice, or a list of something else than strings.
    """
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise FileNotFoundError(
                f"{key}: class map file not found: {os.fspath(source)!r} (one class name per line, in training order)"
            )
        with open(source, "r", encoding="utf8") as handle:
            names = [line.rstrip("\r\n") for line in handle if line.strip()]
        where = repr(os.fspath(source))
    else:
        names, where = list(source), "(list)"
        if not all(isinstance(n, str) for n in names):
            raise ValueError(f"{key} must be a class map file or a list of class names, got {source!r}")
    if not names:
        raise ValueError(f"{key} {where} lists no class")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{key} {where} lists classes more than once: {twice}")
    return names
