"""The one check of config keys and values against a signature, and binding a config to it.

:func:`check_binding` says whether a config mapping fits a callable: its
keys are keywords of the callable (:func:`config_keywords`, following
``**kwargs`` to the base classes and ``from_config``), its values fit their
typing annotations (:mod:`opentad.utils.typecheck`) and no required keyword
is missing; otherwise it returns one line naming the path, the key, the
valid keys and close matches. :func:`bind` calls a callable with a checked
config. :func:`opentad.registry.build` runs the same check before building;
:mod:`opentad.registry` re-exports these names.
"""
from __future__ import annotations

import difflib
import inspect
import types
import typing
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple

from opentad.utils.typecheck import check_value, describe, resolved_annotations

__all__ = ["ConfigError", "bind", "check_binding", "config_keywords", "did_you_mean"]


class ConfigError(ValueError):
    """A config that cannot be turned into an object: unknown type or bad keys."""


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_PLAIN_MODULES = ("builtins", "typing", "collections.abc")


def _own_keywords(fn: Callable, sig_of: Optional[Callable] = None) -> Tuple[Dict[str, inspect.Parameter], bool]:
    """Keyword parameters of ``fn`` (annotations resolved) and whether it takes ``**kwargs`` as well."""
    sig = inspect.signature(sig_of or fn)
    hints = resolved_annotations(fn)
    keys = {
        n: p.replace(annotation=hints.get(n, inspect.Parameter.empty))
        for n, p in sig.parameters.items()
        if p.kind in _NAMED and n not in ("self", "cls")
    }
    return keys, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def _is_built(annotation: Any) -> bool:
    """Whether a parameter takes a built object (``nn.Module``, a dataclass), which ``from_config`` makes."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    args = typing.get_args(annotation) if union else (annotation,)
    return any(inspect.isclass(a) and a.__module__ not in _PLAIN_MODULES for a in args)


def config_keywords(target: Callable) -> Tuple[Dict[str, inspect.Parameter], bool]:
    """The keywords a config may give ``target``, and whether it takes any other keyword too.

    A class's constructor that takes ``**kwargs`` forwards them to its base
    class: the bases' keywords are added, walking the MRO until an
    ``__init__`` without ``**kwargs`` (else any keyword is taken). A class
    with a ``from_config`` classmethod takes that method's keywords; if it
    also has ``**kwargs``, the other keys go to the constructor unchanged, so
    the constructor's keywords are added too, except those that take built
    objects (annotated with a class such as ``nn.Module``): ``from_config``
    makes them.

    Args:
        target: a class (a dataclass too) or a function.

    Returns:
        ``({name: inspect.Parameter with resolved annotation}, open)``.
    """
    keys, open_ = _own_keywords(target.__init__ if inspect.isclass(target) else target, target)
    for base in target.__mro__[1:] if inspect.isclass(target) else ():
        if not open_:
            break
        if base is not object and "__init__" in vars(base):
            more, open_ = _own_keywords(base.__init__)
            keys.update({n: p for n, p in more.items() if n not in keys})
    from_config = getattr(target, "from_config", None)
    if not inspect.ismethod(from_config):
        return keys, open_
    built, forwards = _own_keywords(from_config)
    if not forwards:
        return built, False
    return {**{n: p for n, p in keys.items() if not _is_built(p.annotation)}, **built}, open_


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """``" Did you mean 'a', 'b'?"`` naming up to three close matches of ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.6)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_errors(name: str, keys: Mapping[str, inspect.Parameter], cfg: Mapping[str, Any], path: Optional[str]):
    errors = []
    for key, value in cfg.items():
        if key in keys and not check_value(value, keys[key].annotation, default=keys[key].default):
            where, owner = (f"{path}.{key}", f" ({name})") if path else (f"{name}.{key}", "")
            expected = describe(keys[key].annotation)
            errors.append(f"{where} = {_short_repr(value)} ({type(value).__name__}): expected {expected}{owner}")
    return errors


def check_binding(
    target: Callable,
    cfg: Any,
    *,
    path: Optional[str] = None,
    partial: bool = False,
    check_types: bool = True,
    exclude: Iterable[str] = (),
) -> Optional[str]:
    """The one check of config keys against a signature: an error message, or None if ``cfg`` fits ``target``.

    Keys must be keywords of ``target`` (see :func:`config_keywords`), then
    values must fit their typing annotations (:mod:`opentad.utils.typecheck`),
    then every required keyword must be given.

    Args:
        target: a class (a dataclass declaring a config section too) or a function.
        cfg: the config mapping, without ``type``.
        path: the dotted config path of ``cfg`` (``model.rpn_head``), named in the message.
        partial: if True, missing required keys are no error (a caller supplies them).
        check_types: also check the values.
        exclude: keywords of ``target`` that are no config keys (a caller gives them).

    Returns:
        One line: ``"[path: ]Name got unknown config key(s) [...]. Valid keys: [...]. Did you mean ...?"``,
        ``"path.key = value (type): expected ... (Name)"`` (``Name.key = ...`` without a path), or
        ``"[path: ]Name is missing required config key(s) [...]"``; None when ``cfg`` fits.
    """
    name = getattr(target, "__name__", repr(target))
    where = f"{path}: " if path else ""
    if not isinstance(cfg, Mapping):
        return f"{path or name}: expected a dict, got {type(cfg).__name__} {_short_repr(cfg)}"
    keys, open_ = config_keywords(target)
    keys = {n: p for n, p in keys.items() if n not in exclude}
    unknown = [] if open_ else [k for k in cfg if k not in keys]
    if unknown:
        hints = "".join(did_you_mean(str(k), keys) for k in unknown)
        return f"{where}{name} got unknown config key(s) {unknown}. Valid keys: {list(keys)}.{hints}"
    bad_values = _type_errors(name, keys, cfg, path) if check_types else []
    if bad_values:
        return "; ".join(bad_values)
    missing = [] if partial else [n for n, p in keys.items() if p.default is inspect.Parameter.empty and n not in cfg]
    return f"{where}{name} is missing required config key(s) {missing}." if missing else None


def bind(target: Callable, cfg: Optional[Mapping[str, Any]], *, path: str, **given: Any) -> Any:
    """``target(**given, **cfg)`` after :func:`check_binding` (``given`` are keywords that no config sets).

    For small option dicts (``conv_cfg``, ``norm_cfg``) declared by a dataclass or a layer's constructor.

    Raises:
        ConfigError: a key of ``cfg`` is unknown, its value has the wrong type, or a required key is missing.
    """
    cfg = dict(cfg or {})
    error = check_binding(target, cfg, path=path, exclude=given)
    if error:
        raise ConfigError(error)
    return target(**given, **cfg)
