"""The optimizer from the ``optimizer`` config section, with upstream OpenTAD's parameter groups.

``optimizer = dict(type="AdamW", lr=1e-4, weight_decay=0.05, paramwise=True,
backbone=dict(lr=0, weight_decay=0, custom=[dict(name="adapter", lr=2e-4,
weight_decay=0.05)], exclude=["backbone"]))`` gives, in this order:

* backbone groups (only when the model has a backbone with trainable
  parameters; ``backbone`` is then required). Each backbone parameter, named
  relative to the backbone, goes to the first ``custom`` entry whose ``name``
  is a substring of it (that entry's lr / weight decay); otherwise it is
  dropped if an ``exclude`` string is a substring of it; otherwise it joins
  the group with ``backbone.lr`` / ``backbone.weight_decay``. ``custom`` wins
  over ``exclude``, as upstream.
* detector groups (every parameter outside ``backbone.*``): with
  ``paramwise=True`` the model's ``get_optim_groups(cfg)`` (upstream: weights
  of linear / conv layers decay, biases, norms, scales and ``rel_pe`` do not);
  otherwise one group with the optimizer's own ``lr`` / ``weight_decay``.

Parameters with ``requires_grad=False`` never enter the optimizer. Every other
key (``lr``, ``betas``, ...) goes to the optimizer class, looked up in
:data:`opentad.registry.OPTIMIZERS` (every ``torch.optim`` class).
"""
from __future__ import annotations

import copy
import logging
from typing import Any, Dict, List, Mapping, Optional

import torch
import torch.nn as nn

from opentad.registry import OPTIMIZERS, ConfigError, build, check_binding
from opentad.utils.config import register_section
from opentad.utils.misc import unwrap_model

__all__ = ["build_optimizer", "backbone_param_groups", "detector_param_groups"]

logger = logging.getLogger(__name__)

BACKBONE_KEYS = ("lr", "weight_decay", "custom", "exclude")
CUSTOM_KEYS = ("name", "lr", "weight_decay")


def _trainable_backbone(model: nn.Module) -> Optional[nn.Module]:
    backbone = model.backbone if hasattr(model, "backbone") else None
    if backbone is None or not any(p.requires_grad for p in backbone.parameters()):
        return None
    return backbone


def backbone_param_groups(backbone: nn.Module, cfg: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Groups of the trainable backbone parameters, following the ``optimizer.backbone`` rules above.

    Args:
        backbone: the backbone module (names are relative to it).
        cfg: ``dict(lr, weight_decay, custom=[dict(name, lr, weight_decay)], exclude=[...])``.

    Returns:
        The rest group first (if it has parameters), then one group per ``custom`` entry.
    """
    custom = list(cfg["custom"]) if "custom" in cfg else []
    exclude = list(cfg["exclude"]) if "exclude" in cfg else []
    rest: List[nn.Parameter] = []
    per_custom: List[List[nn.Parameter]] = [[] for _ in custom]
    for name, param in backbone.named_parameters():
        if not param.requires_grad:
            continue
        match = next((i for i, c in enumerate(custom) if c["name"] in name), None)
        if match is not None:
            per_custom[match].append(param)
        elif not any(e in name for e in exclude):
            rest.append(param)
    groups = [dict(params=rest, lr=cfg["lr"], weight_decay=cfg["weight_decay"])] if rest else []
    for entry, params in zip(custom, per_custom):
        groups.append(dict(params=params, lr=entry["lr"], weight_decay=entry["weight_decay"]))
        logger.info("Backbone parameters matching %r: %d tensors, lr=%g", entry["name"], len(params), entry["lr"])
    logger.info("Other backbone parameters: %d tensors, lr=%g", len(rest), cfg["lr"])
    return groups


def detector_param_groups(model: nn.Module, cfg: Mapping[str, Any], paramwise: bool) -> List[Dict[str, Any]]:
    """Groups of the trainable parameters outside ``backbone.*``.

    Raises:
        ConfigError: ``paramwise`` but the model has no ``get_optim_groups``.
    """
    if paramwise:
        if not hasattr(model, "get_optim_groups"):
            raise ConfigError(
                f"optimizer.paramwise=True needs {type(model).__name__}.get_optim_groups(cfg); set paramwise=False"
            )
        groups = model.get_optim_groups(dict(cfg))
        return [dict(g, params=[p for p in g["params"] if p.requires_grad]) for g in groups]
    params = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
    return [dict(params=params)]


def build_optimizer(cfg: Mapping[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    """Build the optimizer of ``model`` from the ``optimizer`` config (not modified).

    Args:
        cfg: ``dict(type, lr, weight_decay, ..., paramwise=False, backbone=None)``.
        model: the detector (a DDP wrapper is unwrapped).

    Raises:
        ConfigError: the backbone trains but ``backbone`` is not given; bad keys
            (see :func:`check_optimizer_section`); no trainable parameter.
    """
    errors = check_optimizer_section(cfg, "optimizer")
    if errors:
        raise ConfigError("; ".join(errors))
    args = copy.deepcopy(dict(cfg))
    paramwise = bool(args.pop("paramwise", False))
    backbone_cfg = args.pop("backbone", None)
    inner = unwrap_model(model)
    backbone = _trainable_backbone(inner)
    if backbone is not None and backbone_cfg is None:
        raise ConfigError(
            "The backbone has trainable parameters but the optimizer config has no 'backbone' entry "
            "(dict(lr=..., weight_decay=..., custom=[...], exclude=[...])); freeze the backbone or add it."
        )
    if backbone is None and backbone_cfg is not None:
        logger.info("No trainable backbone: optimizer.backbone is not used.")
    groups = backbone_param_groups(backbone, backbone_cfg) if backbone is not None else []
    groups += detector_param_groups(inner, args, paramwise)
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ConfigError(f"{type(inner).__name__} has no trainable parameter to optimize")
    return build(args, OPTIMIZERS, params=groups)


@register_section("optimizer")
def check_optimizer_section(value: Any, path: str) -> List[str]:
    """Problems in the ``optimizer`` section: unknown type, keys the class does not take, bad ``backbone``."""
    if not isinstance(value, Mapping):
        return [f"{path}: expected a dict, got {type(value).__name__}"]
    if "type" not in value:
        return [f"{path}: no 'type' (e.g. 'AdamW')"]
    cls = OPTIMIZERS.get(value["type"]) if isinstance(value["type"], str) else value["type"]
    if cls is None:
        return [f"{path}: unknown optimizer type {value['type']!r} (any torch.optim class, e.g. 'AdamW', 'SGD')"]
    errors = []
    keys = {k: v for k, v in value.items() if k not in ("type", "paramwise", "backbone")}
    problem = check_binding(cls, dict(keys, params=[]))
    if problem:
        errors.append(f"{path} (type={value['type']!r}): {problem}")
    if "backbone" in value:
        errors.extend(_check_backbone(value["backbone"], f"{path}.backbone"))
    if "paramwise" in value and not isinstance(value["paramwise"], bool):
        errors.append(f"{path}.paramwise: expected True or False, got {value['paramwise']!r}")
    return errors


def _check_keys(value: Any, path: str, allowed, required) -> List[str]:
    if not isinstance(value, Mapping):
        return [f"{path}: expected a dict, got {type(value).__name__}"]
    errors = []
    unknown = [k for k in value if k not in allowed]
    if unknown:
        errors.append(f"{path}: unknown key(s) {unknown}. Valid keys: {list(allowed)}")
    missing = [k for k in required if k not in value]
    if missing:
        errors.append(f"{path}: missing key(s) {missing}")
    return errors


def _numbers(value: Mapping[str, Any], path: str) -> List[str]:
    """``lr`` and ``weight_decay`` must be numbers (bools are not)."""
    bad = [
        k for k in ("lr", "weight_decay")
        if k in value and (isinstance(value[k], bool) or not isinstance(value[k], (int, float)))
    ]
    return [f"{path}.{k} = {value[k]!r} ({type(value[k]).__name__}): expected a number" for k in bad]


def _check_backbone(value: Any, path: str) -> List[str]:
    errors = _check_keys(value, path, BACKBONE_KEYS, ("lr", "weight_decay"))
    if errors:
        return errors
    errors.extend(_numbers(value, path))
    for i, entry in enumerate(value["custom"] if "custom" in value else []):
        where = f"{path}.custom[{i}]"
        errors.extend(_check_keys(entry, where, CUSTOM_KEYS, CUSTOM_KEYS) or _numbers(entry, where))
    exclude = value["exclude"] if "exclude" in value else []
    if not isinstance(exclude, (list, tuple)) or not all(isinstance(e, str) for e in exclude):
        errors.append(f"{path}.exclude: expected a list of name substrings, got {exclude!r}")
    return errors
