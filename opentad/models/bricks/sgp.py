"""TriDet's Scalable-Granularity Perception (SGP) block (Shi et al., CVPR 2023).

State-dict keys are upstream OpenTAD's (``opentad/models/bricks/sgp.py`` there):
``ln``, ``gn``, ``psi``, ``fc``, ``convw``, ``convkw``, ``global_fc``,
``mlp.0``, ``mlp.2``, ``downsample.1`` (``downsample_type="avg"`` only) and
``drop_path_out.scale`` / ``drop_path_mlp.scale`` (``path_pdrop > 0`` only).
"""
from __future__ import annotations

import logging
from typing import Callable, Optional, Tuple

import torch
import torch.nn as nn

from opentad.models.bricks.misc import AffineDropPath, ChannelLayerNorm
from opentad.models.utils.misc import apply_mask, resize_mask

__all__ = ["SGPBlock", "sgp_window_size"]

logger = logging.getLogger(__name__)

_DOWNSAMPLE_TYPES = ("max", "avg")


def sgp_window_size(kernel_size: int, k: float) -> int:
    """Kernel of the window-level branch: ``round((kernel_size + 1) * k)``, made odd by adding 1.

    Args:
        kernel_size: the instant-level kernel ``w`` (odd).
        k: the granularity ratio.
    """
    size = round((kernel_size + 1) * k)
    return size + 1 if size % 2 == 0 else size


def _depthwise(channels: int, kernel_size: int) -> nn.Conv1d:
    return nn.Conv1d(channels, channels, kernel_size, stride=1, padding=kernel_size // 2, groups=channels)


class SGPBlock(nn.Module):
    """SGP layer plus a GroupNorm-MLP, both residual; optionally downsampling first.

    With ``u = LN(x)`` (over channels, after downsampling ``x``):

    ``out = fc(u) * relu(global_fc(mean_t u)) + (convw(u) + convkw(u)) * psi(u) + u``

    (all five convs depthwise), then ``y = x * m + DropPath(out)`` and
    ``y + DropPath(mlp(GN(y)))``, with ``m`` the downsampled mask. As upstream,
    only the skip term is masked: padded steps of the output are not zero, and
    the temporal mean runs over padded steps too.

    Args:
        n_embd: channels ``C``.
        kernel_size: instant-level kernel ``w`` (odd); the window-level kernel
            is :func:`sgp_window_size` ``(w, k)``.
        n_ds_stride: 1, or the downsampling stride (2 in TriDet).
        k: granularity ratio of the window-level branch.
        group: groups of the MLP's 1x1 convs.
        n_out: output channels of the MLP (must be ``C`` for the residual; default ``C``).
        n_hidden: hidden channels of the MLP (default ``4 C``).
        path_pdrop: drop-path rate; > 0 adds the ``AffineDropPath`` scales.
        act_layer: factory of the activation of the MLP (``nn.GELU``).
        downsample_type: ``"max"`` (``MaxPool1d(s + 1, s, (s + 1) // 2)``) or
            ``"avg"`` (``AvgPool1d(s, s)`` then a 1x1 conv).
        init_conv_vars: std of the normal init of the five SGP convs (biases 0).

    Raises:
        ValueError: even ``kernel_size`` or unknown ``downsample_type``.
    """

    #: hook: eps of ``ln`` and ``gn``
    norm_eps: float = 1e-5

    def __init__(
        self,
        n_embd: int,
        *,
        kernel_size: int = 3,
        n_ds_stride: int = 1,
        k: float = 1.5,
        group: int = 1,
        n_out: Optional[int] = None,
        n_hidden: Optional[int] = None,
        path_pdrop: float = 0.0,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        downsample_type: str = "max",
        init_conv_vars: float = 1.0,
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"{type(self).__name__} kernel_size must be odd, got {kernel_size}")
        if n_ds_stride > 1 and downsample_type not in _DOWNSAMPLE_TYPES:
            raise ValueError(f"SGPBlock downsample_type must be one of {_DOWNSAMPLE_TYPES}, got {downsample_type!r}")
        n_out = n_embd if n_out is None else n_out
        n_hidden = 4 * n_embd if n_hidden is None else n_hidden
        self.kernel_size = kernel_size
        self.stride = n_ds_stride if n_ds_stride > 1 else 1

        self.ln = ChannelLayerNorm(n_embd, eps=self.norm_eps)
        self.gn = nn.GroupNorm(16, n_embd, eps=self.norm_eps)
        self.psi = _depthwise(n_embd, kernel_size)
        self.fc = _depthwise(n_embd, 1)
        self.convw = _depthwise(n_embd, kernel_size)
        self.convkw = _depthwise(n_embd, sgp_window_size(kernel_size, k))
        self.global_fc = _depthwise(n_embd, 1)
        self.downsample = self._downsample(n_embd, n_ds_stride, downsample_type)
        self.mlp = nn.Sequential(
            nn.Conv1d(n_embd, n_hidden, 1, groups=group),
            act_layer(),
            nn.Conv1d(n_hidden, n_out, 1, groups=group),
        )
        if path_pdrop > 0.0:
            self.drop_path_out = AffineDropPath(n_embd, drop_prob=path_pdrop)
            self.drop_path_mlp = AffineDropPath(n_out, drop_prob=path_pdrop)
        else:
            self.drop_path_out = nn.Identity()
            self.drop_path_mlp = nn.Identity()
        self.reset_params(init_conv_vars)

    @staticmethod
    def _downsample(channels: int, stride: int, kind: str) -> nn.Module:
        if stride <= 1:
            return nn.Identity()
        if kind == "max":
            return nn.MaxPool1d(stride + 1, stride=stride, padding=(stride + 1) // 2)
        return nn.Sequential(nn.AvgPool1d(stride, stride=stride, padding=0), nn.Conv1d(channels, channels, 1))

    def reset_params(self, init_conv_vars: float = 0.0) -> None:
        """Normal init (std ``init_conv_vars``) of the five SGP convs, zero biases."""
        for conv in (self.psi, self.fc, self.convw, self.convkw, self.global_fc):
            nn.init.normal_(conv.weight, 0.0, init_conv_vars)
            nn.init.zeros_(conv.bias)

    def branch(self, t: torch.Tensor) -> torch.Tensor:
        """Hook: activation of the sum of the two branches ``convw(u) + convkw(u)`` (none here)."""
        return t

    def downsampled_mask(self, mask: torch.Tensor, length: int, steps: int) -> torch.Tensor:
        """Hook: the mask ``[B, steps]`` of the downsampled input (``mask [B, length]`` nearest-resized).

        Raises:
            ValueError: ``steps`` is not ``length // stride`` (odd ``T`` with max pooling).
        """
        if steps != length // self.stride:
            raise ValueError(
                f"SGPBlock: input length {length} gives {steps} steps after downsampling, not "
                f"{length // self.stride}; pad inputs to a multiple of the pyramid's total stride"
            )
        return resize_mask(mask, steps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Apply the block.

        Args:
            x: ``[B, C, T]``.
            mask: ``[B, T]`` bool.

        Returns:
            ``(y [B, C, T'], mask [B, T'])`` with ``T' = T // stride`` (see :meth:`downsampled_mask`).
        """
        length = x.shape[-1]
        x = self.downsample(x)
        out_mask = self.downsampled_mask(mask, length, x.shape[-1])
        u = self.ln(x)
        phi = torch.relu(self.global_fc(u.mean(dim=-1, keepdim=True)))
        out = self.fc(u) * phi + self.branch(self.convw(u) + self.convkw(u)) * self.psi(u) + u
        out = apply_mask(x, out_mask) + self.drop_path_out(out)
        out = out + self.drop_path_mlp(self.mlp(self.gn(out)))
        return out, out_mask
