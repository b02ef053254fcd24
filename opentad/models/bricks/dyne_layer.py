"""DyFADet's dynamic encoder layer (upstream OpenTAD's ``DynELayer`` in ``projections/dyne_proj.py``).

An :class:`SGPBlock` with two changes; attribute names are upstream's, so the state-dict keys
are ``ln``, ``gn``, ``psi``, ``convw``, ``convkw``, ``fc``, ``global_fc``, ``mlp.0``, ``mlp.2``
and, with drop path, ``drop_path_out.scale``, ``drop_path_mlp.scale``.
"""
from __future__ import annotations

import logging
from typing import Any

import torch

from opentad.models.bricks.sgp import SGPBlock, sgp_window_size

__all__ = ["DynELayer", "expanded_kernel_size"]

logger = logging.getLogger(__name__)

#: kernel of the wide branch ``convkw``: ``round((kernel_size + 1) * k)`` made odd (Python's round)
expanded_kernel_size = sgp_window_size


class DynELayer(SGPBlock):
    """Optional max-pool downsampling, then a dynamic token mixer and an MLP, both residual.

    With ``y = LN(x)`` (over channels, after the pooling):

    ``z = fc(y) * relu(global_fc(mean_t y)) + relu(convw(y) + convkw(y)) * psi(y) + y``,
    ``out = x * mask + drop_path_out(z)``, then ``out + drop_path_mlp(mlp(GN(out)))``.

    That is :class:`SGPBlock` with a ReLU on the two branches (:meth:`branch`), norms of eps
    ``1e-6``, and any length: the output mask is the max-pooled input mask (a step is valid when
    any step of its pooling window is), ``T' = ceil(T / s)``. As upstream, the mean runs over all
    ``T`` steps and neither branch is masked, so padded steps hold values and take part in later
    layers: results depend on the padding.

    Args:
        n_embd: channels ``C`` (a multiple of 16: ``GN`` has 16 groups).
        init_conv_vars: standard deviation of the normal init of the five depthwise convs' weights
            (their biases start at 0). With 0 those weights and biases receive exactly zero
            gradient (every path through them is multiplied by another of them or goes through
            ``relu`` at 0), so they stay 0 in training.
        **kwargs: :class:`SGPBlock`'s ``kernel_size`` (odd), ``n_ds_stride`` (max pooling),
            ``k``, ``n_hidden``, ``path_pdrop``, ``act_layer``.

    Raises:
        ValueError: even ``kernel_size``.
    """

    norm_eps = 1e-6

    def __init__(self, n_embd: int, *, init_conv_vars: float = 0.1, **kwargs: Any):
        super().__init__(n_embd, init_conv_vars=init_conv_vars, **kwargs)

    def branch(self, t: torch.Tensor) -> torch.Tensor:
        """ReLU of ``convw(y) + convkw(y)``."""
        return torch.relu(t)

    def downsampled_mask(self, mask: torch.Tensor, length: int, steps: int) -> torch.Tensor:
        """``mask [B, T]`` max-pooled like the features: ``[B, ceil(T / s)]``."""
        return self.downsample(mask[:, None].float())[:, 0].bool()
