"""Masked 1D convolution with optional normalisation and activation.

``ConvModule`` keeps upstream OpenTAD's attribute names (``conv``, ``norm``,
``act``) so its state-dict keys are ``conv.weight``, ``conv.bias``,
``norm.weight``, ``norm.bias``.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn

from opentad.models.bricks.misc import ChannelLayerNorm
from opentad.models.utils.misc import apply_mask, resize_mask
from opentad.registry import bind

__all__ = ["ConvModule", "build_norm_1d", "build_activation"]

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}
#: norm type -> (layer, its channel keyword, defaults); LN's eps is upstream's 1e-6
_NORMS = {
    "LN": (ChannelLayerNorm, "num_channels", {"eps": 1e-6}),
    "GN": (nn.GroupNorm, "num_channels", {}),
    "BN": (nn.BatchNorm1d, "num_features", {}),
}


def _split_type(cfg: Mapping[str, Any], what: str) -> Tuple[str, Dict[str, Any]]:
    if "type" not in cfg:
        raise ValueError(f"{what} config {dict(cfg)!r} has no 'type' key")
    rest = dict(cfg)
    return rest.pop("type"), rest


def build_norm_1d(norm_cfg: Optional[Mapping[str, Any]], num_channels: int) -> nn.Module:
    """Normalisation layer for ``[B, C, T]`` tensors.

    Args:
        norm_cfg: ``None`` (identity), ``dict(type="LN", eps=1e-6)``,
            ``dict(type="GN", num_groups=..., ...)`` or ``dict(type="BN", ...)``;
            the other keys go to :class:`ChannelLayerNorm` / ``nn.GroupNorm`` /
            ``nn.BatchNorm1d``. LN defaults to ``eps=1e-6`` as upstream.
        num_channels: ``C``.

    Raises:
        ValueError: unknown ``type`` (valid: LN, GN, BN); a key the layer does not take
            (a ``ConfigError`` naming it and the valid keys).
    """
    if norm_cfg is None:
        return nn.Identity()
    norm_type, rest = _split_type(norm_cfg, "norm_cfg")
    if norm_type not in _NORMS:
        raise ValueError(f"norm_cfg type {norm_type!r} is not supported; valid: {list(_NORMS)}")
    layer, width, defaults = _NORMS[norm_type]
    return bind(layer, {**defaults, **rest}, path="norm_cfg", **{width: num_channels})


def build_activation(act_cfg: Optional[Mapping[str, Any]]) -> nn.Module:
    """Activation from ``dict(type=name, **kwargs)``; ``None`` gives identity.

    Names are case-insensitive and may carry an ``nn.`` prefix (``"relu"``,
    ``"nn.GELU"``).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if act_cfg is None:
        return nn.Identity()
    act_type, rest = _split_type(act_cfg, "act_cfg")
    key = act_type.lower().removeprefix("nn.")
    key = {"leakyrelu": "leaky_relu"}.get(key, key)
    if key not in _ACTIVATIONS:
        raise ValueError(f"act_cfg type {act_type!r} is not supported; valid: {sorted(_ACTIVATIONS)}")
    return bind(_ACTIVATIONS[key], rest, path="act_cfg")


class ConvModule(nn.Module):
    """``Conv1d -> mask -> norm -> activation -> mask``.

    With a mask, the conv output is zeroed on padded steps before the norm and
    again after the activation, so padded steps hold zeros for the next layer.
    A strided conv resizes the mask by nearest sampling.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: temporal kernel size.
        stride: temporal stride.
        padding: zero padding on both sides.
        conv_cfg: extra ``nn.Conv1d`` arguments (``groups``, ``bias``, ...); they
            override the ones above.
        norm_cfg: see :func:`build_norm_1d`; with a norm the conv has no bias
            unless ``conv_cfg`` says otherwise.
        act_cfg: see :func:`build_activation`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        conv_cfg: Optional[Mapping[str, Any]] = None,
        norm_cfg: Optional[Mapping[str, Any]] = None,
        act_cfg: Optional[Mapping[str, Any]] = None,
    ):
        super().__init__()
        conv_args: Dict[str, Any] = dict(
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            bias=norm_cfg is None,
        )
        conv_args.update(conv_cfg or {})
        self.conv = nn.Conv1d(**conv_args)
        self.with_norm = norm_cfg is not None
        if self.with_norm:
            self.norm = build_norm_1d(norm_cfg, out_channels)
        self.with_act = act_cfg is not None
        if self.with_act:
            self.act = build_activation(act_cfg)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default conv init with zero bias; norms start as identity."""
        nn.init.kaiming_uniform_(self.conv.weight, a=math.sqrt(5))
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)
        if self.with_norm and getattr(self.norm, "weight", None) is not None:
            nn.init.ones_(self.norm.weight)
            nn.init.zeros_(self.norm.bias)

    def forward(
        self, x: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Apply the block.

        Args:
            x: ``[B, C_in, T]``.
            mask: ``[B, T]`` bool or None.

        Returns:
            ``[B, C_out, T']`` without a mask, else ``(x, mask)`` with the mask
            resized to ``T'``.
        """
        x = self.conv(x)
        if mask is not None:
            mask = resize_mask(mask, x.shape[-1])
            x = apply_mask(x, mask)
        if self.with_norm:
            x = self.norm(x)
        if self.with_act:
            x = self.act(x)
        if mask is None:
            return x
        return apply_mask(x, mask), mask
