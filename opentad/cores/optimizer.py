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
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from opentad.cores.sections import check_section
from opentad.registry import CONFIG_SECTIONS, OPTIMIZERS, ConfigError, build
from opentad.utils.misc import unwrap_model

__all__ = ["build_optimizer", "backbone_param_groups", "detector_param_groups"]

logger = logging.getLogger(__name__)


def _register_torch_optimizers() -> None:
    """Every ``torch.optim`` optimizer class in :data:`OPTIMIZERS` under its own name.

    The registry then finds ``Adam``, ``AdamW``, ``SGD``, ... without importing ``mmengine.optim``, whose
    import also imports bitsandbytes (it registers bitsandbytes' optimizers) and with it ``torch._dynamo``:
    about 8 s of CPU in every training process that has no quantized layer. Other names (mmengine's and
    bitsandbytes' optimizers) still resolve, through ``mmengine.optim``.
    """
    for name in dir(torch.optim):
        cls = getattr(torch.optim, name)
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer:
            if name not in OPTIMIZERS.module_dict:
                OPTIMIZERS.register_module(name=name, module=cls)


_register_torch_optimizers()


@dataclass
class CustomGroup:
    """An entry of ``optimizer.backbone.custom``: backbone parameters whose name contains ``name``."""

    name: str
    lr: float
    weight_decay: float


@dataclass
class BackboneGroups:
    """``optimizer.backbone``."""

    lr: float
    weight_decay: float
    custom: Sequence[Mapping[str, Any]] = ()
    exclude: Sequence[str] = ()


@dataclass
class Grouping:
    """The keys of ``optimizer`` that are not the optimizer class's."""

    paramwise: bool = False
    backbone: Optional[Mapping[str, Any]] = None


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


@CONFIG_SECTIONS.register_module(name="optimizer")
def check_optimizer_section(value: Any, path: str) -> List[str]:
    """Problems in the ``optimizer`` section: unknown type, keys the class does not take, bad ``backbone``."""
    if not isinstance(value, Mapping) or "type" not in value:
        return [f"{path}: expected a dict with 'type' (any torch.optim class, e.g. 'AdamW', 'SGD')"]
    cls = OPTIMIZERS.get(value["type"]) if isinstance(value["type"], str) else value["type"]
    if cls is None:
        return [f"{path}: unknown optimizer type {value['type']!r} (any torch.optim class, e.g. 'AdamW', 'SGD')"]
    grouping = {k: value[k] for k in ("paramwise", "backbone") if k in value}
    keys = {k: v for k, v in value.items() if k not in grouping and k != "type"}
    errors = check_section(cls, keys, path, engine=("params",), partial=False) + check_section(Grouping, grouping, path)
    backbone = value.get("backbone")
    if not isinstance(backbone, Mapping):
        return errors
    backbone_errors = check_section(BackboneGroups, backbone, f"{path}.backbone", partial=False)
    for i, entry in enumerate(() if backbone_errors else backbone.get("custom", ())):
        backbone_errors += check_section(CustomGroup, entry, f"{path}.backbone.custom[{i}]", partial=False)
    return errors + backbone_errors
