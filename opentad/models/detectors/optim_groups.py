"""Which of a detector's parameters decay: upstream OpenTAD's ``paramwise=True`` rule.

:meth:`~opentad.models.detectors.base.BaseDetector.get_optim_groups` makes
its two AdamW groups from :func:`split_by_decay`; variants change the rule
through the detector's ``no_decay_suffixes`` and ``decay_suffixes``.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch.nn as nn

from opentad.models.bricks.misc import AffineDropPath, Scale

__all__ = ["split_by_decay"]

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)


def split_by_decay(
    model: nn.Module, *, no_decay_suffixes: Tuple[str, ...], decay_suffixes: Tuple[str, ...]
) -> Tuple[Dict[str, nn.Parameter], Dict[str, nn.Parameter]]:
    """``(decay, no_decay)``: the parameters outside ``backbone*``, by full name, in the two groups.

    The first rule that fits a parameter decides: a name ending in one of
    ``no_decay_suffixes`` does not decay; the weight of an ``nn.Linear`` /
    ``nn.Conv1d`` decays; the weight of a norm layer and the ``scale`` of a
    ``Scale`` / ``AffineDropPath`` do not; a name ending in one of
    ``decay_suffixes`` decays.

    Args:
        model: the detector.
        no_decay_suffixes, decay_suffixes: the detector's suffix rules.

    Raises:
        ValueError: a parameter fits no rule (the message names it).
    """
    decay, no_decay = {}, {}
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if full.startswith("backbone"):
                continue
            if name.endswith(no_decay_suffixes):
                no_decay[full] = param
            elif name.endswith("weight") and isinstance(module, (nn.Linear, nn.Conv1d)):
                decay[full] = param
            elif name.endswith("weight") and isinstance(module, _NORMS):
                no_decay[full] = param
            elif name.endswith("scale") and isinstance(module, (Scale, AffineDropPath)):
                no_decay[full] = param
            elif name.endswith(decay_suffixes):
                decay[full] = param
            else:
                raise ValueError(f"get_optim_groups: parameter {full!r} ({type(module).__name__}) fits no group")
    return decay, no_decay
