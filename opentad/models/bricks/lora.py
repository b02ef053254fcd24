"""LoRA around a frozen linear layer (plain float or bitsandbytes-quantized).

``LoRALinear`` owns its frozen ``base_layer`` beside the trainable low-rank
pair, as peft and torchtune do::

    y = base_layer(x) + lora_b(lora_a(dropout(x))) * (alpha / r)

``lora_a`` is initialised like peft's (Kaiming-uniform with a=sqrt(5)) and
``lora_b`` to zero, so a freshly wrapped layer computes exactly what its base
did. What trains is declared by :meth:`LoRALinear.trainable_parameters`; the
base layer's parameters are frozen when the wrapper is built.
"""
from __future__ import annotations

import math
from typing import Iterator, Tuple

import torch
from torch import nn

from .quant import dequantize_weight, is_quantized

__all__ = ["LoRALinear"]


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update.

    Args:
        base_layer: ``nn.Linear`` or a bitsandbytes ``Linear4bit``/``Linear8bitLt``
            with weight ``[out, in]``; frozen here.
        r: LoRA rank (> 0).
        alpha: LoRA scaling numerator; the update is scaled by ``alpha / r``.
        dropout: dropout probability on the LoRA input.

    Shapes:
        input ``[..., in]`` → output ``[..., out]``.

    Raises:
        ValueError: ``r`` is not positive or ``dropout`` is outside [0, 1).
    """

    def __init__(self, base_layer: nn.Module, *, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if r <= 0:
            raise ValueError(f"LoRA rank r must be positive, got {r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self.r = r
        self.alpha = alpha
        self.scaling = alpha / r
        self.base_layer = base_layer
        for param in self.base_layer.parameters():
            param.requires_grad_(False)
        device = self._float_device()
        self.lora_a = nn.Linear(self.in_features, r, bias=False, device=device)
        self.lora_b = nn.Linear(r, self.out_features, bias=False, device=device)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reset_lora_parameters()

    def _float_device(self) -> torch.device:
        for tensor in list(self.base_layer.parameters()) + list(self.base_layer.buffers()):
            return tensor.device
        return torch.device("cpu")

    def reset_lora_parameters(self) -> None:
        """Kaiming-uniform ``lora_a`` and zero ``lora_b`` (the update starts at zero)."""
        nn.init.kaiming_uniform_(self.lora_a.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_b.weight)

    def trainable_parameters(self) -> Iterator[Tuple[str, nn.Parameter]]:
        """The parameters that train: ``lora_a.weight`` and ``lora_b.weight``."""
        yield "lora_a.weight", self.lora_a.weight
        yield "lora_b.weight", self.lora_b.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        if not torch.is_autocast_enabled(x.device.type):  # under autocast the LoRA linears cast themselves
            x = x.to(self.lora_a.weight.dtype)
        update = self.lora_b(self.lora_a(self.lora_dropout(x)))
        return out + (update * self.scaling).to(out.dtype)

    def base_weight(self) -> torch.Tensor:
        """The base layer's weight ``[out, in]`` in float32 (dequantized if quantized)."""
        if is_quantized(self.base_layer):
            return dequantize_weight(self.base_layer)
        return self.base_layer.weight.detach().float()

    @torch.no_grad()
    def merged_linear(self) -> nn.Linear:
        """A float ``nn.Linear`` computing base + LoRA update (dropout off).

        The base weight is dequantized first, so the result equals this layer
        in eval mode up to float rounding.
        """
        weight = self.base_weight() + self.scaling * (self.lora_b.weight.float() @ self.lora_a.weight.float())
        bias = self.base_layer.bias
        merged = nn.Linear(self.in_features, self.out_features, bias=bias is not None, device=weight.device)
        merged.weight.copy_(weight)
        if bias is not None:
            merged.bias.copy_(bias.detach().float())
        return merged

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, r={self.r}, alpha={self.alpha}"
