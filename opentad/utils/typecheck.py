"""Checking config values against the typing annotations of the functions that receive them.

:func:`check_value` answers whether a config value fits an annotation, for
the annotations constructors use: ``int``, ``float`` (an ``int`` fits too),
``bool``, ``str``, ``None``, ``Optional[...]``, ``Union[...]``,
``Literal[...]``, ``List`` / ``Sequence`` / ``Tuple[...]`` (a list or a
tuple; a string is not a sequence here), ``Dict`` / ``Mapping`` and plain
classes. Anything it cannot judge passes: ``Any``, ``Callable``, type
variables, unresolvable names; a plain class other than the builtins accepts
its instances, None, dicts (a config the consumer builds) and lists, and
refuses strings and numbers that are not instances (``'abc'`` for a ``Tensor``). ``bool`` is not an ``int`` here:
``num_classes=True`` is refused.
"""
from __future__ import annotations

import collections.abc as cabc
import inspect
import numbers
import types
import typing
from typing import Any, Callable, Dict, Optional

__all__ = ["check_value", "describe", "resolved_annotations"]

_SEQUENCES = (list, tuple, cabc.Sequence, cabc.MutableSequence)
_MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)
_UNION_TYPES = (typing.Union, types.UnionType)
_LITERALS = (str, bytes, int, float, bool)


def resolved_annotations(fn: Callable) -> Dict[str, Any]:
    """``{parameter: annotation}`` of ``fn`` with string annotations evaluated where possible.

    Names that cannot be resolved (e.g. imported only for type checkers) are left out.
    """
    try:
        return dict(typing.get_type_hints(fn))
    except Exception:  # noqa: BLE001 - any failure: fall back to one annotation at a time
        pass
    namespace = getattr(inspect.unwrap(fn), "__globals__", {})
    out: Dict[str, Any] = {}
    for name, ann in getattr(fn, "__annotations__", {}).items():
        if isinstance(ann, str):
            try:
                ann = eval(ann, dict(namespace), {})  # noqa: S307 - the function's own annotation text
            except Exception:  # noqa: BLE001 - unresolvable: not checked
                continue
        out[name] = ann
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _all(results) -> Optional[bool]:
    results = list(results)
    if any(r is False for r in results):
        return False
    return None if any(r is None for r in results) else True


def _sequence(value: Any, args: tuple, is_tuple: bool) -> Optional[bool]:
    if not isinstance(value, (list, tuple)):
        return False
    if not args:
        return True
    if is_tuple and not (len(args) == 2 and args[1] is Ellipsis):
        if args == ((),):  # Tuple[()]
            return len(value) == 0
        if len(value) != len(args):
            return False
        return _all(_accepts(v, a) for v, a in zip(value, args))
    return _all(_accepts(v, args[0]) for v in value)


def _class(value: Any, cls: type) -> Optional[bool]:
    if cls is bool:
        return isinstance(value, bool)
    if cls is int:
        return _is_int(value)
    if cls is float:
        return _is_real(value)
    if cls is str:
        return isinstance(value, str)
    if cls is type(None):
        return value is None
    if cls in (list, tuple) or cls in _SEQUENCES:
        return _sequence(value, (), cls is tuple)
    if cls in _MAPPINGS:
        return isinstance(value, cabc.Mapping)
    try:
        if isinstance(value, cls):
            return True
    except TypeError:  # e.g. a subscripted generic
        return None
    if value is None or isinstance(value, (cabc.Mapping, list, tuple)) or callable(value):
        return None  # a placeholder, or a config the consumer builds or converts
    return False if isinstance(value, _LITERALS) else None


def _accepts(value: Any, ann: Any) -> Optional[bool]:
    """True: fits; False: does not; None: cannot tell."""
    if ann is Any or ann is inspect.Parameter.empty or isinstance(ann, (str, typing.TypeVar)):
        return None
    if ann is None:
        return value is None
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin in _UNION_TYPES:
        results = [_accepts(value, a) for a in args]
        return True if True in results else (None if None in results else False)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin is not None:
        if origin in (list, tuple) or origin in _SEQUENCES:
            return _sequence(value, args, origin is tuple)
        if origin in _MAPPINGS:
            if not isinstance(value, cabc.Mapping):
                return False
            if len(args) != 2:
                return True
            return _all(r for k, v in value.items() for r in (_accepts(k, args[0]), _accepts(v, args[1])))
        return None
    if inspect.isclass(ann):
        return _class(value, ann)
    return None


def check_value(value: Any, annotation: Any, *, default: Any = inspect.Parameter.empty) -> bool:
    """Whether ``value`` may be passed for a parameter with ``annotation`` (and ``default``).

    A parameter whose default is None accepts None whatever its annotation
    says (``x: int = None``). Unknown annotations accept everything.
    """
    if value is None and default is None:
        return True
    return _accepts(value, annotation) is not False


def _short(annotation: Any) -> str:
    """A compact name: ``int``, ``float | Tensor``, ``list[str]``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None) or annotation is None:
        return "None"
    if origin in _UNION_TYPES:
        return " | ".join(_short(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        name = "list" if origin in _SEQUENCES and origin is not tuple else getattr(origin, "__name__", "?")
        inner = ", ".join("..." if a is Ellipsis else _short(a) for a in args)
        return f"{name}[{inner}]" if args else name
    return getattr(annotation, "__name__", repr(annotation))


def describe(annotation: Any) -> str:
    """``annotation`` in words, for messages: ``Optional[int]`` -> ``an int or None``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None) or annotation is None:
        return "None"
    if origin in _UNION_TYPES:
        return " or ".join(describe(a) for a in args)
    if origin is typing.Literal:
        return f"one of {list(args)}"
    if origin in (list, tuple) or origin in _SEQUENCES:
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} values ({', '.join(_short(a) for a in args)})"
        return f"a list of {_short(args[0])}" if args else "a list"
    if origin in _MAPPINGS:
        return f"a dict of {_short(args[0])} to {_short(args[1])}" if len(args) == 2 else "a dict"
    names = {bool: "True or False", int: "an int", float: "a number", str: "a string"}
    if annotation in names:
        return names[annotation]
    if annotation in (list, tuple) or annotation in _SEQUENCES:
        return "a list"
    if annotation in _MAPPINGS:
        return "a dict"
    return f"a {_short(annotation)}"
