"""Reading files that may come from anyone, without ever running code stored in them.

A pickle can name any Python callable, and unpickling calls it: a crafted
``.pth`` or ``.pkl`` file runs code on load. Every file this project reads is
therefore loaded with an allow-list:

* :func:`torch_load` is ``torch.load(weights_only=True)`` (tensors and plain
  Python values only); a file that needs more is refused with
  :class:`UntrustedFileError`, and one that is not a readable ``torch.save``
  file (truncated, empty, text) with :class:`UnreadableFileError`. Both
  messages are one line naming the file.
* :func:`pickle_load` reads plain pickles (feature ``.pkl`` files, raw
  predictions) allowing only numpy arrays and scalars, torch tensors (their
  storage is itself read weights-only) and builtin containers.

The only way to read a file that needs full unpickling is the explicit
``trust_pickle=True`` of :func:`torch_load`, exposed on the command line as
``--trust-pickle`` of ``tools/model_converters/make_weights_only.py`` (and of
the VideoMAE converters): it converts a trusted legacy file, once, into one
that loads weights-only. :func:`plain_copy` is what that conversion keeps.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import re
from typing import IO, Any, Dict, List, Sequence, Tuple

import torch

__all__ = [
    "UntrustedFileError",
    "UnreadableFileError",
    "TRUST_HINT",
    "torch_load",
    "pickle_load",
    "plain_copy",
]

logger = logging.getLogger(__name__)

#: how to opt in for a trusted legacy file, quoted in refusals.
TRUST_HINT = (
    "if you trust it, convert it once with "
    "python tools/model_converters/make_weights_only.py {path} OUT.pth --trust-pickle, then use OUT.pth"
)

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80


class UntrustedFileError(ValueError):
    """A file whose loading would unpickle Python objects beyond tensors and plain values (refused).

    Attributes:
        path: the file.
        refused: the first object torch or the allow-list refused (``module.name``).
    """

    def __init__(self, message: str, *, path: str = "", refused: str = "") -> None:
        super().__init__(message)
        self.path, self.refused = path, refused


class UnreadableFileError(ValueError):
    """A file that is not what it should be: empty, truncated, text, or another format."""


def _refused_global(message: str) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", message)
    return found.group(1) if found else "an object torch does not allow"


def _describe_content(path: str) -> str:
    """What the first bytes of ``path`` look like, for an error message."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if not head:
        return "the file is empty"
    if head.startswith(_ZIP_MAGIC):
        return "a torch.save archive that is truncated or corrupted"
    if head[0] == _PICKLE_PROTO:
        return "a plain pickle, not a torch.save file"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"a text file, starting {head.decode('ascii')[:12]!r}"
    return f"unknown content (starts with {head[:8]!r})"


def torch_load(
    path: str,
    *,
    map_location: Any = "cpu",
    what: str = "checkpoint",
    trust_pickle: bool = False,
    allowed: Sequence[Any] = (),
) -> Any:
    """``torch.load`` that refuses to run code: weights-only unless ``trust_pickle``.

    Args:
        path: the file.
        map_location: where tensors go.
        what: what the file is for (e.g. ``"--resume checkpoint"``), named in messages.
        trust_pickle: load with full unpickling. Only for files you trust:
            loading may run code stored in the file. Logged as a warning.
        allowed: extra classes the weights-only loader may rebuild (each must
            be harmless to construct, e.g. ``argparse.Namespace``).

    Returns:
        The loaded object.

    Raises:
        FileNotFoundError: no file at ``path``.
        UntrustedFileError: the file holds objects beyond tensors and plain
            values (the message names the first one and how to opt in).
        UnreadableFileError: the file is empty, truncated, text or of another format.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file not found: {path}")
    if trust_pickle:
        logger.warning("Loading %s with full unpickling (trust_pickle): it may run code stored in it", path)
    try:
        if trust_pickle:
            return torch.load(path, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc) and "Unsupported operand" not in str(exc):
            refused = _refused_global(str(exc))
            raise UntrustedFileError(
                f"{what} {path} refused: it holds Python objects beyond tensors and plain values "
                f"({refused}), and unpickling them can run code; {TRUST_HINT.format(path=path)}",
                path=path, refused=refused,
            ) from None
        raise UnreadableFileError(
            f"{what} {path} is not a readable PyTorch file ({_describe_content(path)}); "
            "expected a file written by torch.save"
        ) from None
    except (RuntimeError, KeyError, EOFError, ValueError, IndexError, UnicodeDecodeError, AttributeError):
        raise UnreadableFileError(
            f"{what} {path} is not a readable PyTorch file ({_describe_content(path)}); "
            "expected a file written by torch.save"
        ) from None


def _load_storage_bytes(data: bytes) -> Any:
    """Replacement of ``torch.storage._load_from_bytes``: the nested file is read weights-only."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _np_attr(module: str, name: str) -> Any:
    """``numpy._core.<module>.<name>`` (numpy 2) or ``numpy.core.<module>.<name>`` (numpy 1)."""
    import importlib

    for core in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{core}.{module}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {module}.{name}")


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    """What a plain pickle may name: numpy arrays and scalars, tensors, ``OrderedDict``, ``codecs.encode``."""
    import codecs
    import collections

    import numpy as np

    table: Dict[Tuple[str, str], Any] = {
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): codecs.encode,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    }
    for core in ("numpy.core", "numpy._core"):  # pickles name the module of the numpy that wrote them
        table[(f"{core}.multiarray", "_reconstruct")] = _np_attr("multiarray", "_reconstruct")
        table[(f"{core}.multiarray", "scalar")] = _np_attr("multiarray", "scalar")
        table[(f"{core}.numeric", "_frombuffer")] = _np_attr("numeric", "_frombuffer")
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle: IO[bytes], path: str, what: str) -> None:
        super().__init__(handle)
        self._path, self._what, self._table = path, what, _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._table:
            return self._table[(module, name)]
        raise UntrustedFileError(
            f"{self._what} {self._path} refused: it names {module}.{name}, and only numpy arrays, torch tensors "
            "and plain values are read from pickles (loading other objects can run code)",
            path=self._path, refused=f"{module}.{name}",
        )


def pickle_load(path: str, *, what: str = "pickle file") -> Any:
    """Read a plain pickle holding numpy arrays, tensors and builtin values only.

    Args:
        path: the file.
        what: what the file is for, named in messages.

    Raises:
        FileNotFoundError: no file at ``path``.
        UntrustedFileError: the pickle names any other callable or class (nothing of it is run).
        UnreadableFileError: the file is not a complete pickle.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, "rb") as handle:
        try:
            return _RestrictedUnpickler(handle, path, what).load()
        except UntrustedFileError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise UnreadableFileError(
                f"{what} {path} is not a readable pickle ({type(exc).__name__}: {str(exc)[:80]})"
            ) from None


_PLAIN_SCALARS = (str, int, float, bool, bytes, type(None))
_DROPPED = object()


def _plain_leaf(obj: Any) -> Any:
    """A tensor or plain value for ``obj``, or ``_DROPPED``."""
    import numpy as np

    if isinstance(obj, np.ndarray) and obj.dtype != object:
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):  # before the builtins: np.float64 is a float, yet pickles as numpy
        return obj.item() if not isinstance(obj, np.object_) else _DROPPED
    if isinstance(obj, (torch.Tensor, torch.dtype, torch.device, torch.Size)) or type(obj) in _PLAIN_SCALARS:
        return obj  # exact builtin types: a subclass (an enum, say) would not load weights-only
    return _DROPPED


def plain_copy(obj: Any, *, path: str = "") -> Tuple[Any, List[str]]:
    """``obj`` with only what weights-only loading accepts: tensors, plain values and builtin containers.

    numpy arrays become tensors and numpy scalars Python numbers; any other
    object (e.g. an ``argparse.Namespace`` of training arguments, a logger's
    history) is left out.

    Args:
        obj: a loaded checkpoint.
        path: where ``obj`` sits (for the list of dropped entries).

    Returns:
        ``(copy, dropped)``: the copy (dicts, lists and tuples rebuilt), and
        ``"path (type)"`` for each entry left out.
    """
    if isinstance(obj, dict):
        out, dropped = {}, []
        for key, value in obj.items():
            sub = f"{path}.{key}" if path else str(key)
            if not isinstance(key, (str, int)):
                dropped.append(f"{sub} (a key of type {type(key).__name__})")
                continue
            kept, lost = plain_copy(value, path=sub)
            dropped += lost
            if kept is not _DROPPED:
                out[key] = kept
        return out, dropped
    if isinstance(obj, (list, tuple)):
        items, dropped = [], []
        for i, value in enumerate(obj):
            kept, lost = plain_copy(value, path=f"{path}[{i}]")
            dropped += lost
            if kept is not _DROPPED:
                items.append(kept)
        return (items if isinstance(obj, list) else tuple(items)), dropped
    leaf = _plain_leaf(obj)
    if leaf is _DROPPED:
        return _DROPPED, [f"{path or '(file)'} ({type(obj).__module__}.{type(obj).__qualname__})"]
    return leaf, []
