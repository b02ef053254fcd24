"""Small layers: learnable scales, drop path, LayerNorm over channels, sinusoidal positions."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Scale", "ScaleExp", "drop_path", "AffineDropPath", "ChannelLayerNorm", "sinusoid_encoding"]


class Scale(nn.Module):
    """Multiply the input by one learnable scalar (state-dict key ``scale``).

    Args:
        init_value: the scalar's initial value.
    """

    def __init__(self, init_value: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(init_value, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of any shape -> ``x * scale``."""
        return x * self.scale


class ScaleExp(nn.Module):
    """``exp(x * scale)`` with one learnable scalar (AFSD's regression scale; key ``scale``, shape ``[1]``).

    Args:
        init_value: the scalar's initial value.
    """

    def __init__(self, init_value: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([init_value], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of any shape -> ``exp(x * scale)``."""
        return torch.exp(x * self.scale)


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """Stochastic depth: drop whole samples of a residual branch.

    Each sample of the batch is kept with probability ``1 - drop_prob`` and then
    divided by it, so the expectation is unchanged. Identity when not training.

    Args:
        x: ``[B, ...]``.
        drop_prob: probability of dropping a sample.
        training: whether the module is in training mode.
    """
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    keep = torch.rand(shape, dtype=x.dtype, device=x.device) < keep_prob
    return x / keep_prob * keep.to(x.dtype)


class AffineDropPath(nn.Module):
    """Per-channel learnable scale (initialised small) followed by drop path.

    Args:
        num_dim: number of channels ``C``.
        drop_prob: drop-path probability.
        init_scale_value: initial value of every channel's scale.
        transpose: inputs are ``[B, T, C]`` instead of ``[B, C, T]``.
    """

    def __init__(
        self, num_dim: int, *, drop_prob: float = 0.0, init_scale_value: float = 1e-4, transpose: bool = False
    ):
        super().__init__()
        self.scale = nn.Parameter(init_scale_value * torch.ones((1, num_dim, 1)))
        self.drop_prob = drop_prob
        self.transpose = transpose

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` (or ``[B, T, C]`` with ``transpose``) -> same shape."""
        if self.transpose:
            return drop_path(self.scale * x.transpose(1, 2), self.drop_prob, self.training).transpose(1, 2)
        return drop_path(self.scale * x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class ChannelLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the channels of a ``[B, C, T]`` tensor.

    It has the same parameters (``weight``, ``bias``) as ``nn.LayerNorm(C)``,
    so checkpoints of models that permute around a LayerNorm load unchanged.

    Args:
        num_channels: ``C``.
        eps: added to the variance.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5):
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` -> ``[B, C, T]``, each time step normalised over ``C``."""
        if x.dim() != 3 or x.shape[1] != self.normalized_shape[0]:
            raise ValueError(
                f"ChannelLayerNorm({self.normalized_shape[0]}) expects [B, C, T] with C={self.normalized_shape[0]}, "
                f"got shape {tuple(x.shape)}"
            )
        y = F.layer_norm(x.transpose(1, 2), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.transpose(1, 2)


def sinusoid_encoding(n_position: int, dim: int) -> torch.Tensor:
    """Fixed sinusoidal position table of "Attention is all you need".

    Channel ``j`` at position ``p`` holds ``sin(p / 10000^(2*(j//2)/dim))`` for
    even ``j`` and the cosine of the same angle for odd ``j``.

    Args:
        n_position: number of positions ``T``.
        dim: number of channels ``C``.

    Returns:
        ``[1, C, T]`` float32 table (computed in float64).
    """
    position = torch.arange(n_position, dtype=torch.float64)[:, None]
    exponent = 2.0 * torch.div(torch.arange(dim), 2, rounding_mode="floor").double() / dim
    angle = position / torch.pow(10000.0, exponent)[None, :]
    table = torch.empty_like(angle)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.float().t()[None].contiguous()
