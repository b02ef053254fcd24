"""Loading configs and checking them before anything is built.

Configs are mmengine ``Config`` files with ``_base_`` inheritance. Checks run
before a run starts:

* every dict with a ``type`` key must name a registered component whose
  constructor (or ``from_config``) accepts all the dict's keys, and each value
  must fit the keyword's typing annotation;
* untyped sections (``solver``, ``workflow``, ``inference``, ...) are checked
  by the checker their consumer registers under the section's name in
  :data:`opentad.registry.CONFIG_SECTIONS` (the registry imports it when
  asked: nothing here imports the engine);
* top-level keys: the sections of :data:`SECTIONS`, plus helper variables that the file itself defines (``window_size
  = 128``): a scalar, string or list, or any value under a name starting with
  ``_``. A top-level dict under another name is an error (a misspelled
  section, e.g. ``worflow = dict(...)``). A ``--cfg-options`` key must start
  with a section: helper variables are substituted while the file is read,
  so overriding one afterwards would change nothing.

All problems are collected and reported together in one :class:`ConfigError`.
"""
from __future__ import annotations

import argparse
import difflib
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from mmengine.config import Config
from mmengine.config import DictAction as _MMDictAction

from opentad.registry import ALL_REGISTRIES, CONFIG_SECTIONS
from opentad.utils.binding import ConfigError, check_binding
from opentad.utils.typecheck import check_value, describe

__all__ = [
    "Config",
    "DictAction",
    "ConfigError",
    "SECTIONS",
    "load_config",
    "check_config",
    "check_overrides",
    "validate_config",
]

#: the top-level keys the engines read (upstream OpenTAD's, plus ``load_from``) and the type of each.
SECTIONS: Dict[str, Any] = {
    "dataset": Mapping,
    "model": Mapping,
    "solver": Mapping,
    "optimizer": Mapping,
    "scheduler": Mapping,
    "workflow": Mapping,
    "inference": Mapping,
    "post_processing": Mapping,
    "evaluation": Mapping,
    "work_dir": str,
    "load_from": Optional[str],
}


class DictAction(_MMDictAction):
    """mmengine's ``KEY=VALUE`` action whose malformed pairs are argparse errors (one line, no traceback)."""

    def __call__(self, parser, namespace, values, option_string=None):
        for pair in values:
            key = pair.split("=", 1)[0]
            if "=" not in pair or not key.strip():
                raise argparse.ArgumentError(
                    self, f"{pair!r} is not KEY=VALUE (e.g. workflow.end_epoch=3 or solver.train.batch_size=4)"
                )
        try:
            super().__call__(parser, namespace, values, option_string)
        except (AssertionError, ValueError, IndexError) as exc:
            raise argparse.ArgumentError(self, f"cannot parse {' '.join(values)!r}: {exc}") from None


def _close(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.6)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _uses_of(node: Any, name: str, path: str = "") -> List[str]:
    """Dotted paths of keys called ``name`` inside the sections (where a helper variable is usually used)."""
    found: List[str] = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            if path and key == name:
                found.append(sub)
            if path or key in SECTIONS:
                found += _uses_of(value, name, sub)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += _uses_of(value, name, f"{path}[{i}]")
    return found


def check_overrides(cfg: Mapping[str, Any], cfg_options: Mapping[str, Any], *, source: str = "config") -> List[str]:
    """Problems with ``--cfg-options`` keys: each must start with a section of the config.

    Args:
        cfg: the config as read from its file (before the overrides).
        cfg_options: ``{"a.b.c": value}``.
        source: the config file, for messages.

    Returns:
        One message per bad key (empty when all are fine).
    """
    sections = sorted(SECTIONS)
    data = cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)
    errors = []
    for key in cfg_options:
        first = str(key).split(".")[0]
        if first in sections:
            continue
        if first in data:
            uses = _uses_of(data, first)[:3]
            hint = f"override the keys that use it ({', '.join(uses)})" if uses else "override the keys using its value"
            errors.append(
                f"--cfg-options {key}: {first!r} is a helper variable of {source}, substituted when the file is "
                f"read, so changing it here has no effect; {hint}"
            )
        else:
            errors.append(
                f"--cfg-options {key}: unknown top-level key {first!r}. Valid: {sections}.{_close(first, sections)}"
            )
    return errors


def load_config(path: str, cfg_options: Optional[Mapping[str, Any]] = None) -> Config:
    """Read a config file and apply ``--cfg-options`` style overrides.

    Args:
        path: the config file.
        cfg_options: ``{"a.b.c": value}`` overrides, as parsed by :class:`DictAction`.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ConfigError: an override key does not start with a section (see :func:`check_overrides`).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file not found: {path}")
    cfg = Config.fromfile(path)
    if cfg_options:
        errors = check_overrides(cfg, cfg_options, source=path)
        if errors:
            raise ConfigError("\n".join(errors))
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


def _check_typed(node: Mapping[str, Any], path: str, errors: List[str]) -> None:
    type_name = node["type"]
    candidates = _lookup(type_name)
    keys = {k: v for k, v in node.items() if k != "type"}
    if not candidates:
        errors.append(f"{path}: unknown type {type_name!r} (not in any registry)")
        return
    problems = [check_binding(c, keys, path=path, partial=True) for c in candidates]
    if all(problems):
        errors.append(problems[0])


def _walk(node: Any, path: str, errors: List[str]) -> None:
    if isinstance(node, Mapping):
        if "type" in node:
            _check_typed(node, path, errors)
        for key, value in node.items():
            _walk(value, f"{path}.{key}" if path else str(key), errors)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _walk(value, f"{path}[{i}]", errors)


def _check_top_level(key: str, value: Any) -> List[str]:
    if key in SECTIONS:
        if check_value(value, SECTIONS[key]):
            return []
        return [f"{key} = {value!r} ({type(value).__name__}): expected {describe(SECTIONS[key])}"]
    if key.startswith("_") or not isinstance(value, Mapping):
        return []  # a helper variable
    sections = sorted(SECTIONS)
    return [
        f"{key}: unknown top-level section. Valid: {sections}.{_close(key, sections)} (helper variables "
        "hold a number, string or list, or have a name starting with '_')"
    ]


def check_config(cfg: Mapping[str, Any], sections: Optional[Sequence[str]] = None) -> List[str]:
    """Return every problem found in ``cfg`` (empty when it is sound).

    Args:
        cfg: a loaded config (``Config`` or a plain dict).
        sections: top-level keys to check; all of them by default.
    """
    data = cfg.to_dict() if isinstance(cfg, Config) else dict(cfg)
    errors: List[str] = []
    for key, value in data.items():
        if sections is not None and key not in sections:
            continue
        top = _check_top_level(key, value)
        errors.extend(top)
        if top:
            continue
        checker = CONFIG_SECTIONS.get(key) if key in SECTIONS else None
        if checker is not None:
            errors.extend(checker(value, key))
        else:
            _walk(value, key, errors)
    return errors


def validate_config(cfg: Mapping[str, Any], source: str = "config") -> None:
    """Raise :class:`ConfigError` naming every problem in ``cfg``, one line each.

    Args:
        cfg: the loaded config.
        source: where it came from (the file name), used in the message.
    """
    errors = check_config(cfg)
    if len(errors) == 1:
        raise ConfigError(f"{source}: {errors[0]}")
    if errors:
        listing = "\n  - ".join(errors)
        raise ConfigError(f"{source} has {len(errors)} problems:\n  - {listing}")
