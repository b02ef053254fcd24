"""Exponential moving average of a model's weights (upstream OpenTAD's ``ModelEma``).

After each optimizer step, every trainable parameter and floating-point
buffer is blended: ``ema = decay * ema + (1 - decay) * model``. Everything
else in the state (frozen parameters, integer and boolean tensors, packed
quantized weights and their statistics) is copied as it is: averaging it
would corrupt it or, for frozen values, only add rounding. :meth:`ModelEma.set`
loads the model's checkpoint state (:func:`opentad.utils.checkpoint.model_state_dict`),
so what a state dict cannot restore (bitsandbytes' quantization statistics)
is copied too.
"""
from __future__ import annotations

import copy
from typing import Dict, Optional

import torch
import torch.nn as nn

from opentad.utils.checkpoint import load_model_state, model_state_dict
from opentad.utils.misc import unwrap_model

__all__ = ["ModelEma"]


class ModelEma(nn.Module):
    """A frozen copy of a model that tracks the moving average of its weights.

    Args:
        model: the model (a DDP wrapper is unwrapped first).
        decay: weight of the old average, 0.999 as upstream.
        device: keep the copy on this device (None: the model's).

    Raises:
        ValueError: ``decay`` is not in [0, 1].
    """

    def __init__(self, model: nn.Module, *, decay: float = 0.999, device: Optional[torch.device] = None) -> None:
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"ModelEma decay must be in [0, 1], got {decay}")
        self.module = copy.deepcopy(unwrap_model(model))
        self.module.eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay = decay
        self.device = device
        if device is not None:
            self.module.to(device=device)

    def _pairs(self, model: nn.Module) -> Dict[str, tuple]:
        ema_state = self.module.state_dict(keep_vars=True)
        model_state = unwrap_model(model).state_dict(keep_vars=True)
        if ema_state.keys() != model_state.keys():
            missing = sorted(set(model_state) - set(ema_state))
            extra = sorted(set(ema_state) - set(model_state))
            raise KeyError(f"ModelEma: model and EMA copy differ: only in model {missing[:5]}, only in EMA {extra[:5]}")
        return {k: (ema_state[k], model_state[k]) for k in ema_state}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend trainable parameters and float buffers of ``model`` into the average; copy the rest of its state."""
        inner = unwrap_model(model)
        blended = {n for n, p in inner.named_parameters() if p.requires_grad}
        blended |= {n for n, b in inner.named_buffers() if b.is_floating_point()}
        for key, (ema_t, model_t) in self._pairs(model).items():
            src = model_t.detach()
            if self.device is not None:
                src = src.to(device=self.device)
            if key in blended and ema_t.is_floating_point() and src.is_floating_point():
                ema_t.mul_(self.decay).add_(src.to(ema_t.dtype), alpha=1.0 - self.decay)
            else:
                ema_t.copy_(src)

    @torch.no_grad()
    def set(self, model: nn.Module) -> None:
        """Make the average equal to ``model``'s current state (its checkpoint state, loaded strictly)."""
        load_model_state(self.module, model_state_dict(model), strict=True)

    def forward(self, *args, **kwargs):
        """Run the averaged model."""
        return self.module(*args, **kwargs)
