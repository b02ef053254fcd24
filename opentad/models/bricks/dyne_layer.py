"""DyFADet's dynamic encoder layer (upstream OpenTAD's ``DynELayer`` in ``projections/dyne_proj.py``).

Attribute names are upstream's, so the state-dict keys are ``ln``, ``gn``, ``psi``, ``convw``,
``convkw``, ``fc``, ``global_fc``, ``mlp.0``, ``mlp.2`` and, with drop path, ``drop_path_out.scale``,
``drop_path_mlp.scale``.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional, Tuple

import torch
import torch.nn as nn

from opentad.models.bricks.misc import AffineDropPath, ChannelLayerNorm

__all__ = ["DynELayer", "expanded_kernel_size"]

logger = logging.getLogger(__name__)


def expanded_kernel_size(kernel_size: int, k: float) -> int:
    """Kernel of the wide branch: ``round((kernel_size + 1) * k)`` made odd (Python's round, halves to even)."""
    size = round((kernel_size + 1) * k)
    return size + 1 if size % 2 == 0 else size


def _depthwise(channels: int, kernel_size: int) -> nn.Conv1d:
    return nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)


class DynELayer(nn.Module):
    """Optional max-pool downsampling, then a dynamic token mixer and an MLP, both residual.

    With ``y = LN(x)`` (over channels, after the pooling):

    ``z = fc(y) * relu(global_fc(mean_t y)) + relu(convw(y) + convkw(y)) * psi(y) + y``,
    ``out = x * mask + drop_path_out(z)``, then ``out + drop_path_mlp(mlp(GN(out)))``.

    ``psi``, ``convw`` (kernel ``kernel_size``), ``convkw`` (kernel :func:`expanded_kernel_size`),
    ``fc`` and ``global_fc`` (1x1) are depthwise. As upstream, the mean runs over all ``T``
    steps and neither branch is masked, so padded steps hold values and take part in later
    layers: results depend on the padding.

    Args:
        n_embd: channels ``C`` (a multiple of 16: ``GN`` has 16 groups).
        kernel_size: odd kernel of ``psi`` and ``convw``.
        n_ds_stride: 1, or the stride ``s`` of ``MaxPool1d(s + 1, s, (s + 1) // 2)``.
        k: expansion factor of ``convkw``'s kernel.
        n_hidden: MLP width (``4 C`` when None).
        path_pdrop: drop-path rate; 0 means no ``AffineDropPath`` (and no ``scale`` parameters).
        init_conv_vars: standard deviation of the normal init of the five depthwise convs' weights
            (their biases start at 0). With 0 those weights and biases receive exactly zero
            gradient (every path through them is multiplied by another of them or goes through
            ``relu`` at 0), so they stay 0 in training.
        act_layer: factory of the MLP's activation.

    Raises:
        ValueError: even ``kernel_size``.
    """

    def __init__(
        self,
        n_embd: int,
        *,
        kernel_size: int = 3,
        n_ds_stride: int = 1,
        k: float = 1.5,
        n_hidden: Optional[int] = None,
        path_pdrop: float = 0.0,
        init_conv_vars: float = 0.1,
        act_layer: Callable[[], nn.Module] = nn.GELU,
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"DynELayer needs an odd kernel_size, got {kernel_size}")
        self.kernel_size = kernel_size
        self.stride = n_ds_stride if n_ds_stride > 1 else 1
        self.ln = ChannelLayerNorm(n_embd, eps=1e-6)
        self.gn = nn.GroupNorm(16, n_embd, eps=1e-6)
        self.psi = _depthwise(n_embd, kernel_size)
        self.convw = _depthwise(n_embd, kernel_size)
        self.convkw = _depthwise(n_embd, expanded_kernel_size(kernel_size, k))
        self.fc = _depthwise(n_embd, 1)
        self.global_fc = _depthwise(n_embd, 1)
        if self.stride > 1:
            self.downsample = nn.MaxPool1d(self.stride + 1, stride=self.stride, padding=(self.stride + 1) // 2)
        else:
            self.downsample = nn.Identity()
        hidden = 4 * n_embd if n_hidden is None else n_hidden
        self.mlp = nn.Sequential(nn.Conv1d(n_embd, hidden, 1), act_layer(), nn.Conv1d(hidden, n_embd, 1))
        if path_pdrop > 0.0:
            self.drop_path_out = AffineDropPath(n_embd, drop_prob=path_pdrop)
            self.drop_path_mlp = AffineDropPath(n_embd, drop_prob=path_pdrop)
        else:
            self.drop_path_out = nn.Identity()
            self.drop_path_mlp = nn.Identity()
        self.reset_params(init_conv_vars)

    def reset_params(self, init_conv_vars: float) -> None:
        """Normal(0, ``init_conv_vars``) weights and zero biases for the five dynamic convs."""
        for conv in (self.psi, self.fc, self.convw, self.convkw, self.global_fc):
            nn.init.normal_(conv.weight, 0, init_conv_vars)
        for conv in (self.psi, self.fc, self.convw, self.convkw, self.global_fc):
            nn.init.constant_(conv.bias, 0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x [B, C, T]``, ``mask [B, T]`` -> ``([B, C, T'], [B, T'])``, ``T' = ceil(T / s)``.

        The output mask is the max-pooled input mask (a step is valid when any step of its
        pooling window is).
        """
        x = self.downsample(x)
        out_mask = self.downsample(mask[:, None].to(x.dtype)).detach()
        y = self.ln(x)
        psi = self.psi(y)
        fc = self.fc(y)
        phi = torch.relu(self.global_fc(y.mean(dim=-1, keepdim=True)))
        convw = self.convw(y)
        convkw = self.convkw(y)
        z = fc * phi + torch.relu(convw + convkw) * psi + y
        out = x * out_mask + self.drop_path_out(z)
        out = out + self.drop_path_mlp(self.mlp(self.gn(out)))
        return out, out_mask[:, 0].bool()
