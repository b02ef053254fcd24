"""Loading configs and checking them before anything is built.

Configs are mmengine ``Config`` files with ``_base_`` inheritance. Two checks
catch typos before a run starts:

* every dict with a ``type`` key must name a registered component whose
  constructor (or ``from_config``) accepts all the dict's keys;
* untyped sections (``solver``, ``workflow``, ``inference``, ...) are checked
  against the keys their consumer declares with :func:`register_section`.

All problems are collected and reported together in one :class:`ConfigError`.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from mmengine.config import Config, DictAction

from opentad.registry import ALL_REGISTRIES, ConfigError, check_binding

__all__ = [
    "Config",
    "DictAction",
    "ConfigError",
    "load_config",
    "check_config",
    "validate_config",
    "register_section",
]

# section name -> callable(section_value, path) -> list of error strings
_SECTION_CHECKERS: Dict[str, Callable[[Any, str], List[str]]] = {}


def register_section(name: str, allowed_keys: Optional[Iterable[str]] = None):
    """Declare the keys an untyped top-level section may hold.

    Use either as ``register_section("workflow", ["logging_interval", ...])``
    or as a decorator on a checker ``fn(value, path) -> list[str]``.

    Args:
        name: top-level config key, e.g. ``"solver"``.
        allowed_keys: the keys the consumer reads; a key outside this set is an error.
    """
    if allowed_keys is not None:
        allowed = sorted(set(allowed_keys))

        def checker(value: Any, path: str) -> List[str]:
            if not isinstance(value, Mapping):
                return [f"{path}: expected a dict, got {type(value).__name__}"]
            bad = [k for k in value if k not in allowed]
            return [f"{path}: unknown key(s) {bad}. Valid keys: {allowed}"] if bad else []

        _SECTION_CHECKERS[name] = checker
        return checker

    def decorator(fn: Callable[[Any, str], List[str]]):
        _SECTION_CHECKERS[name] = fn
        return fn

    return decorator


def load_config(path: str, cfg_options: Optional[Mapping[str, Any]] = None) -> Config:
    """Read a config file and apply ``--cfg-options`` style overrides.

    Args:
        path: the config file.
        cfg_options: ``{"a.b.c": value}`` overrides, as parsed by :class:`DictAction`.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
    """
    import os

    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file not found: {path}")
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    return cfg


def _lookup(type_name: Any) -> List[Any]:
    if not isinstance(type_name, str):
        return [type_name]
    found = []
    for registry in ALL_REGISTRIES.values():
        cls = registry.get(type_name)
        if cls is not None and cls not in found:
            found.append(cls)
    return found


def _walk(node: Any, path: str, errors: List[str]) -> None:
    if isinstance(node, Mapping):
        if "type" in node:
            type_name = node["type"]
            candidates = _lookup(type_name)
            keys = {k: v for k, v in node.items() if k != "type"}
            if not candidates:
                errors.append(f"{path}: unknown type {type_name!r} (not in any registry)")
            else:
                problems = [check_binding(c, keys, partial=True) for c in candidates]
                if all(p is not None for p in problems):
                    errors.append(f"{path} (type={type_name!r}): {problems[0]}")
        for key, value in node.items():
            _walk(value, f"{path}.{key}" if path else str(key), errors)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _walk(value, f"{path}[{i}]", errors)


def check_config(cfg: Mapping[str, Any], sections: Optional[Sequence[str]] = None) -> List[str]:
    """Return every problem found in ``cfg`` (empty when it is sound).

    Args:
        cfg: a loaded config (``Config`` or a plain dict).
        sections: top-level keys to check; all of them by default.
    """
    # importing the engine registers the section checkers of its consumers
    import opentad.cores  # noqa: F401

    data = cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)
    errors: List[str] = []
    for key, value in data.items():
        if sections is not None and key not in sections:
            continue
        checker = _SECTION_CHECKERS.get(key)
        if checker is not None:
            errors.extend(checker(value, key))
        else:
            _walk(value, key, errors)
    return errors


def validate_config(cfg: Mapping[str, Any], source: str = "config") -> None:
    """Raise :class:`ConfigError` listing every problem in ``cfg``.

    Args:
        cfg: the loaded config.
        source: where it came from (the file name), used in the message.
    """
    errors = check_config(cfg)
    if errors:
        listing = "\n  - ".join(errors)
        raise ConfigError(f"{source} has {len(errors)} problem(s):\n  - {listing}")
