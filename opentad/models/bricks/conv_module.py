"""mmcv's ``ConvModule`` for 3D convolutions: ``Conv3d -> BatchNorm3d -> ReLU`` with mmcv's names.

Upstream's mmaction2 backbones (``mmaction.ResNet3d``) are made of mmcv ``ConvModule`` s, so their
checkpoints name the parts ``conv`` and ``bn`` (``conv1.conv.weight``, ``conv1.bn.running_mean``);
:class:`ConvModule3d` keeps those names (the activation, ``activate``, holds no state).

The layer configs of mmaction2's configs (``conv_cfg=dict(type="Conv3d")``,
``norm_cfg=dict(type="BN3d", requires_grad=True)``, ``act_cfg=dict(type="ReLU", inplace=True)``) are
read by :func:`parse_layer_cfgs`; other layer types are refused with the valid ones named.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from opentad.registry import ConfigError, bind

__all__ = ["Conv3dOptions", "BN3dOptions", "ReLUOptions", "parse_layer_cfgs", "ConvModule3d"]

Size3 = Union[int, Sequence[int]]


@dataclasses.dataclass(frozen=True)
class Conv3dOptions:
    """``conv_cfg=dict(type="Conv3d")``: a plain ``nn.Conv3d``; no other key."""


@dataclasses.dataclass(frozen=True)
class BN3dOptions:
    """``norm_cfg=dict(type="BN3d", ...)`` (mmcv's ``build_norm_layer`` keys).

    Args:
        requires_grad: whether the affine weight and bias train.
        eps: ``nn.BatchNorm3d`` epsilon.
        momentum: ``nn.BatchNorm3d`` running-statistics momentum.
    """

    requires_grad: bool = True
    eps: float = 1e-5
    momentum: float = 0.1


@dataclasses.dataclass(frozen=True)
class ReLUOptions:
    """``act_cfg=dict(type="ReLU", inplace=...)``; mmcv's ConvModule defaults ``inplace`` to True."""

    inplace: bool = True


_VALID = {
    "conv_cfg": {"Conv3d": Conv3dOptions},
    "norm_cfg": {"BN3d": BN3dOptions},
    "act_cfg": {"ReLU": ReLUOptions},
}


def _parse(cfg: Optional[Mapping[str, Any]], key: str, owner: str) -> Any:
    valid = _VALID[key]
    if cfg is None or not isinstance(cfg, Mapping) or cfg.get("type") not in valid:
        got = cfg.get("type") if isinstance(cfg, Mapping) else cfg
        raise ConfigError(
            f"{owner}: {key} type {got!r} is not supported; valid: {[dict(type=t) for t in valid]} "
            f"(the layers of mmaction2's ResNet3d configs)"
        )
    rest = {k: v for k, v in cfg.items() if k != "type"}
    return bind(valid[cfg["type"]], rest, path=f"{owner} {key}")


def parse_layer_cfgs(
    *,
    conv_cfg: Optional[Mapping[str, Any]],
    norm_cfg: Optional[Mapping[str, Any]],
    act_cfg: Optional[Mapping[str, Any]],
    owner: str,
) -> Tuple[Conv3dOptions, BN3dOptions, ReLUOptions]:
    """Check the three layer configs of an mmaction2 backbone.

    Args:
        conv_cfg: ``dict(type="Conv3d")``.
        norm_cfg: ``dict(type="BN3d", requires_grad=..., eps=..., momentum=...)``.
        act_cfg: ``dict(type="ReLU", inplace=...)``.
        owner: the class name, for messages.

    Returns:
        the parsed options, in that order.

    Raises:
        ConfigError: a config that is None, another layer type (the message names the key and the valid
            types), or a key the layer does not take (named with the valid keys).
    """
    return (
        _parse(conv_cfg, "conv_cfg", owner),
        _parse(norm_cfg, "norm_cfg", owner),
        _parse(act_cfg, "act_cfg", owner),
    )


class ConvModule3d(nn.Module):
    """``Conv3d`` (no bias) -> ``BatchNorm3d`` (``bn``) -> optional ReLU (``activate``), as mmcv's ConvModule.

    Weights start as mmcv's: the conv Kaiming-normal (fan-out, ReLU gain), the norm weight 1 and bias 0.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: ``(t, h, w)`` or an int.
        stride: ``(t, h, w)`` or an int.
        padding: zero padding ``(t, h, w)`` or an int.
        dilation: ``(t, h, w)`` or an int.
        norm: batch-norm options (``requires_grad=False`` freezes its weight and bias).
        act: ReLU options, or None for no activation.

    Shapes: ``[B, C_in, T, H, W] -> [B, C_out, T', H', W']`` with ``nn.Conv3d``'s output sizes.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size3,
        *,
        stride: Size3 = 1,
        padding: Size3 = 0,
        dilation: Size3 = 1,
        norm: BN3dOptions = BN3dOptions(),
        act: Optional[ReLUOptions] = ReLUOptions(),
    ):
        super().__init__()
        self.conv = nn.Conv3d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False
        )
        self.bn = nn.BatchNorm3d(out_channels, eps=norm.eps, momentum=norm.momentum)
        self.bn.requires_grad_(norm.requires_grad)
        self.with_activation = act is not None
        if act is not None:
            self.activate = nn.ReLU(inplace=act.inplace)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Conv, norm, activation (see the class docstring for shapes)."""
        x = self.bn(self.conv(x))
        return self.activate(x) if self.with_activation else x
