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
callable: config sections declared as dataclasses use it too. It lives in
:mod:`opentad.utils.binding` with :func:`bind`, :func:`config_keywords` and
:class:`ConfigError`, all importable from here as before.
"""
from __future__ import annotations

import copy
import inspect
from importlib import import_module
from typing import Any, Dict, List, Mapping, Optional

from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import Registry as _MMRegistry

from opentad.utils.binding import ConfigError, bind, check_binding, config_keywords, did_you_mean
from opentad.utils.bnb_log import lower_optional_kernel_notice

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
                f"Unknown {registry.name} type {type_name!r}.{did_you_mean(type_name, registry.names())} "
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
