"""One registry per kind of component, and the single function that builds them.

Every registry is an :class:`mmengine.registry.Registry` whose ``locations``
name the package that registers into it, so ``REGISTRY.get(name)`` imports
what it needs on first use. Upstream OpenTAD configs name some components
with an ``mmaction.`` prefix (``mmaction.Resize``, ``mmaction.Recognizer3D``);
such aliases are registered literally and resolved before mmengine's scope
logic would try to import a package called ``mmaction``.

:func:`build` is the only way configs become objects. It never mutates the
config it is given, checks that the keys bind to the constructor (or to the
class's ``from_config``) and that the values fit their typing annotations
before calling it, and names the class, the bad key (and value) and what is
valid when they do not. :func:`check_binding` is that check, for any
callable: config sections declared as dataclasses use it too.
"""
from __future__ import annotations

import copy
import difflib
import inspect
import types
import typing
from importlib import import_module
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import Registry as _MMRegistry

from opentad.utils.bnb_log import lower_optional_kernel_notice
from opentad.utils.typecheck import check_value, describe, resolved_annotations

lower_optional_kernel_notice()  # before OPTIMIZERS loads mmengine.optim, which imports bitsandbytes

__all__ = [
    "Registry",
    "ConfigError",
    "build",
    "bind",
    "check_binding",
    "config_keywords",
    "ALL_REGISTRIES",
    "DETECTORS",
    "BACKBONES",
    "PROJECTIONS",
    "NECKS",
    "HEADS",
    "ROI_HEADS",
    "LOSSES",
    "PRIOR_GENERATORS",
    "CLASSIFIERS",
    "LAYERS",
    "DATASETS",
    "TRANSFORMS",
    "EVALUATORS",
    "OPTIMIZERS",
    "SCHEDULERS",
    "CONFIG_SECTIONS",
]


class ConfigError(ValueError):
    """A config that cannot be turned into an object: unknown type or bad keys."""


class Registry(_MMRegistry):
    """mmengine registry that resolves literal aliases (``mmaction.Resize``) and imports its locations in order."""

    def get(self, key: str):  # noqa: D401 - same contract as mmengine
        for location in self._locations:  # in order, so a name registered low never imports the layers above
            if not isinstance(key, str) or key in self._module_dict:
                break
            import_module(location)
        if isinstance(key, str) and key in self._module_dict:
            return self._module_dict[key]
        return super().get(key)

    def names(self) -> List[str]:
        """All names registered here (aliases included), sorted."""
        self.import_from_location()
        return sorted(self._module_dict)


def _child(name: str, *locations: str) -> Registry:
    return Registry(name, scope="opentad", locations=list(locations))


DETECTORS = _child("detector", "opentad.models.detectors")
BACKBONES = _child("backbone", "opentad.models.backbones")
PROJECTIONS = _child("projection", "opentad.models.projections")
NECKS = _child("neck", "opentad.models.necks")
HEADS = _child("dense head", "opentad.models.dense_heads")
ROI_HEADS = _child("roi head", "opentad.models.roi_heads")
LOSSES = _child("loss", "opentad.models.losses")
PRIOR_GENERATORS = _child("prior generator", "opentad.models.dense_heads")
# External video-level classifiers of ``post_processing.external_cls`` (upstream CLASSIFIERS).
CLASSIFIERS = _child("external classifier", "opentad.models.utils.post_processing")
# Basic layers named by ``norm_cfg``/``act_cfg`` dicts (``dict(type="LN", eps=1e-6)``).
LAYERS = _child("layer", "opentad.models.bricks.layers")
DATASETS = _child("dataset", "opentad.datasets")
TRANSFORMS = _child("transform", "opentad.transforms", "opentad.datasets.transforms")
EVALUATORS = _child("evaluator", "opentad.evaluations")
SCHEDULERS = _child("scheduler", "opentad.cores")
# Checkers ``fn(value, path) -> list of errors`` of the untyped top-level config sections (``solver``, ...),
# registered under the section's name by the package that reads it.
CONFIG_SECTIONS = _child("config section", "opentad.cores")
# A child of mmengine's optimizer registry, so every torch.optim class
# (AdamW, SGD, ...) resolves by name without being registered again here.
OPTIMIZERS = Registry(
    "optimizer", parent=MMENGINE_OPTIMIZERS, scope="opentad", locations=["opentad.cores", "mmengine.optim"]
)

ALL_REGISTRIES: Dict[str, Registry] = {
    r.name: r
    for r in (
        DETECTORS,
        BACKBONES,
        PROJECTIONS,
        NECKS,
        HEADS,
        ROI_HEADS,
        LOSSES,
        PRIOR_GENERATORS,
        CLASSIFIERS,
        LAYERS,
        DATASETS,
        TRANSFORMS,
        EVALUATORS,
        SCHEDULERS,
        OPTIMIZERS,
    )
}


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


def _suggest(name: str, options: Iterable[str]) -> str:
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
        hints = "".join(_suggest(str(k), keys) for k in unknown)
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


def build(cfg: Optional[Mapping[str, Any]], registry: Registry, **default_args: Any) -> Any:
    """Build an object from ``cfg`` (a mapping with ``type``) using ``registry``.

    The config is deep-copied, never mutated. ``default_args`` fill keys that
    the config does not set. If the class defines a ``from_config``
    classmethod, the keys it names go to it and it returns the sub-modules it
    built (as constructor keyword arguments); the other keys go to the
    constructor unchanged (see :func:`config_keywords`).

    Args:
        cfg: the config mapping, or None (then None is returned).
        registry: where to look up ``cfg["type"]``.
        **default_args: values for keys the config leaves out.

    Returns:
        The built object.

    Raises:
        ConfigError: the type is missing or unknown (the message lists close
            matches), or the keys do not bind to the constructor.
    """
    if cfg is None:
        return None
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"Expected a config dict for the {registry.name} registry, got {type(cfg).__name__}: {cfg!r}")
    args = copy.deepcopy(dict(cfg))
    if "type" not in args:
        raise ConfigError(f"Config for the {registry.name} registry has no 'type' key: {dict(cfg)!r}")
    type_name = args.pop("type")
    if not isinstance(type_name, str):
        cls = type_name
    else:
        cls = registry.get(type_name)
        if cls is None:
            raise ConfigError(
                f"Unknown {registry.name} type {type_name!r}.{_suggest(type_name, registry.names())} "
                f"Registered: {registry.names()}"
            )
    for key, value in default_args.items():
        args.setdefault(key, value)
    error = check_binding(cls, args)
    if error:
        raise ConfigError(f"In config of type {getattr(type_name, '__name__', type_name)!r}: {error}")
    from_config = getattr(cls, "from_config", None)
    if not inspect.ismethod(from_config):
        return cls(**args)
    takes = inspect.signature(from_config).parameters
    rest = {k: args.pop(k) for k in list(args) if k not in takes}
    return cls(**rest, **from_config(**args))
