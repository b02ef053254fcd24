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
valid when they do not.
"""
from __future__ import annotations

import copy
import difflib
import inspect
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
    "check_binding",
    "type_errors",
    "ALL_REGISTRIES",
    "DETECTORS",
    "BACKBONES",
    "PROJECTIONS",
    "NECKS",
    "HEADS",
    "ROI_HEADS",
    "LOSSES",
    "PRIOR_GENERATORS",
    "LAYERS",
    "DATASETS",
    "TRANSFORMS",
    "EVALUATORS",
    "OPTIMIZERS",
    "SCHEDULERS",
]


class ConfigError(ValueError):
    """A config that cannot be turned into an object: unknown type or bad keys."""


class Registry(_MMRegistry):
    """mmengine registry that resolves literal aliases such as ``mmaction.Resize``."""

    def get(self, key: str):  # noqa: D401 - same contract as mmengine
        self.import_from_location()
        if isinstance(key, str) and key in self._module_dict:
            return self._module_dict[key]
        return super().get(key)

    def names(self) -> List[str]:
        """All names registered here (aliases included), sorted."""
        self.import_from_location()
        return sorted(self._module_dict)


def _child(name: str, location: str) -> Registry:
    return Registry(name, scope="opentad", locations=[location])


DETECTORS = _child("detector", "opentad.models.detectors")
BACKBONES = _child("backbone", "opentad.models.backbones")
PROJECTIONS = _child("projection", "opentad.models.projections")
NECKS = _child("neck", "opentad.models.necks")
HEADS = _child("dense head", "opentad.models.dense_heads")
ROI_HEADS = _child("roi head", "opentad.models.roi_heads")
LOSSES = _child("loss", "opentad.models.losses")
PRIOR_GENERATORS = _child("prior generator", "opentad.models.dense_heads")
# Basic layers named by ``norm_cfg``/``act_cfg`` dicts (``dict(type="LN", eps=1e-6)``).
LAYERS = _child("layer", "opentad.models.bricks.layers")
DATASETS = _child("dataset", "opentad.datasets")
TRANSFORMS = _child("transform", "opentad.datasets.transforms")
EVALUATORS = _child("evaluator", "opentad.evaluations")
SCHEDULERS = _child("scheduler", "opentad.cores")
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
        LAYERS,
        DATASETS,
        TRANSFORMS,
        EVALUATORS,
        SCHEDULERS,
        OPTIMIZERS,
    )
}


def _target_signature(cls: Callable) -> inspect.Signature:
    """The signature config keys must bind to: ``from_config`` if the class has one."""
    from_config = getattr(cls, "from_config", None)
    if from_config is not None and inspect.ismethod(from_config):
        return inspect.signature(from_config)
    return inspect.signature(cls)


def _suggest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.6)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _named(sig: inspect.Signature) -> List[str]:
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [n for n, p in sig.parameters.items() if p.kind not in skip]


def _accepted_keys(cls: Callable, sig: inspect.Signature) -> Optional[List[str]]:
    """Keyword names ``cls`` accepts, or None if it accepts any.

    A class whose ``__init__`` takes ``**kwargs`` and forwards them to its
    base class accepts the base's names too: the classes of the MRO are
    walked until one ``__init__`` has no ``**kwargs`` (then those names are
    all it accepts) or a non-class base takes arbitrary keywords (None).
    """
    has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    names = _named(sig)
    if not has_var_kw:
        return names
    if not inspect.isclass(cls) or getattr(cls, "from_config", None) is not None:
        return None
    for base in cls.__mro__[1:]:
        if base is object or "__init__" not in vars(base):
            continue
        base_sig = inspect.signature(base.__init__)
        names += [n for n in _named(base_sig) if n != "self" and n not in names]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in base_sig.parameters.values()):
            return names
    return None


def _parameter_specs(cls: Callable, sig: inspect.Signature) -> Dict[str, Tuple[Any, Any]]:
    """``{name: (annotation, default)}`` of the keywords ``cls`` takes, bases' included as in :func:`_accepted_keys`."""
    target = getattr(cls, "from_config", None)
    fn = target if target is not None and inspect.ismethod(target) else (cls.__init__ if inspect.isclass(cls) else cls)
    hints = resolved_annotations(fn)
    specs = {n: (hints.get(n, inspect.Parameter.empty), sig.parameters[n].default) for n in _named(sig)}
    has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    if not has_var_kw or not inspect.isclass(cls) or target is not None:
        return specs
    for base in cls.__mro__[1:]:
        if base is object or "__init__" not in vars(base):
            continue
        base_sig = inspect.signature(base.__init__)
        base_hints = resolved_annotations(base.__init__)
        for n in _named(base_sig):
            specs.setdefault(n, (base_hints.get(n, inspect.Parameter.empty), base_sig.parameters[n].default))
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in base_sig.parameters.values()):
            break
    return specs


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_errors(cls: Callable, kwargs: Mapping[str, Any], *, path: Optional[str] = None) -> List[str]:
    """Values of ``kwargs`` that do not fit the annotations of ``cls`` (see :mod:`opentad.utils.typecheck`).

    Args:
        cls: a class (or function) from a registry.
        kwargs: the config keys, without ``type``.
        path: the dotted config path of ``kwargs`` (``model.rpn_head``), used in the messages.

    Returns:
        One message per bad value: ``"Class.key = value (type): expected ..."``, or with
        ``path`` ``"path.key = value (type): expected ... (Class)"``.
    """
    name = getattr(cls, "__name__", repr(cls))
    specs = _parameter_specs(cls, _target_signature(cls))
    errors = []
    for key, value in kwargs.items():
        if key not in specs:
            continue
        annotation, default = specs[key]
        if not check_value(value, annotation, default=default):
            where, owner = (f"{path}.{key}", f" ({name})") if path else (f"{name}.{key}", "")
            errors.append(
                f"{where} = {_short_repr(value)} ({type(value).__name__}): expected {describe(annotation)}{owner}"
            )
    return errors


def check_binding(
    cls: Callable, kwargs: Mapping[str, Any], *, partial: bool = False, check_types: bool = True
) -> Optional[str]:
    """Return an error message if ``kwargs`` do not bind to ``cls``, else ``None``.

    Keys are checked against the constructor's (or ``from_config``'s)
    keywords, then values against their typing annotations (:func:`type_errors`).

    Args:
        cls: a class (or function) from a registry.
        kwargs: the config keys, without ``type``.
        partial: if True, missing required arguments are not an error (used
            when a caller supplies them at build time through ``default_args``).
        check_types: also check the values (else keys only).
    """
    sig = _target_signature(cls)
    params = sig.parameters
    accepted = _accepted_keys(cls, sig)
    unknown: List[str] = [] if accepted is None else [k for k in kwargs if k not in accepted]
    name = getattr(cls, "__name__", repr(cls))
    if unknown:
        valid = [n for n in accepted if n not in ("self", "args", "kwargs")]
        hints = "".join(_suggest(k, valid) for k in unknown)
        return (
            f"{name} got unknown config key(s) {unknown}. Valid keys: {valid}.{hints}"
        )
    bad_values = type_errors(cls, kwargs) if check_types else []
    if bad_values:
        return "; ".join(bad_values)
    if not partial:
        try:
            sig.bind_partial(**kwargs)
            missing = [
                n
                for n, p in params.items()
                if p.default is inspect.Parameter.empty
                and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                and n not in kwargs
                and n not in ("self", "cls")
            ]
        except TypeError as exc:  # pragma: no cover - defensive
            return f"{name}: {exc}"
        if missing:
            return f"{name} is missing required config key(s) {missing}."
    return None


def build(cfg: Optional[Mapping[str, Any]], registry: Registry, **default_args: Any) -> Any:
    """Build an object from ``cfg`` (a mapping with ``type``) using ``registry``.

    The config is deep-copied, never mutated. ``default_args`` fill keys that
    the config does not set. If the class defines a ``from_config``
    classmethod, it turns the config keys into constructor keyword arguments
    (this is where sub-modules are built); otherwise the keys are passed to
    the constructor as they are.

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
        raise ConfigError(f"In config of type {type_name!r}: {error}")
    from_config = getattr(cls, "from_config", None)
    if from_config is not None and inspect.ismethod(from_config):
        return cls(**from_config(**args))
    return cls(**args)
