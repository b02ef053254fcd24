"""The residual blocks of mmaction2's ``ResNet3d`` (I3D ResNet): :class:`BasicBlock3d` and :class:`Bottleneck3d`.

Module names follow mmaction2 (``conv1``/``conv2``/``conv3`` as mmcv ``ConvModule`` s with ``conv``/``bn``,
``downsample``), so checkpoint keys load unchanged; the backbone is
:class:`~opentad.models.backbones.resnet3d.ResNet3d`.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.utils.checkpoint as cp
from torch import nn

from opentad.models.bricks.conv_module import BN3dOptions, ConvModule3d, ReLUOptions

__all__ = ["BasicBlock3d", "Bottleneck3d"]


class _Block3d(nn.Module):
    """Residual block: the ``conv*`` modules in order, plus ``downsample`` on the shortcut, then ReLU."""

    expansion = 1
    last = "conv2"

    def _finish(self, downsample: Optional[nn.Module], act: ReLUOptions, with_cp: bool) -> None:
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=act.inplace)
        self.with_cp = with_cp

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for name in ("conv1", "conv2", "conv3"):
            if hasattr(self, name):
                out = getattr(self, name)(out)
        return out + (x if self.downsample is None else self.downsample(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, T, H, W] -> [B, planes * expansion, T / temporal_stride, H / s, W / s]``."""
        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(self._residual, x, use_reentrant=False)
        else:
            out = self._residual(x)
        return self.relu(out)


class BasicBlock3d(_Block3d):
    """Two 3x3 convs (``inflate``: 3x3x3, else 1x3x3); the first carries the strides and the dilation.

    Args:
        inplanes, planes: input and output channels.
        spatial_stride, temporal_stride: strides of ``conv1``.
        dilation: spatial dilation of ``conv1``.
        downsample: shortcut module or None (identity).
        style: only moves the stride in :class:`Bottleneck3d`; kept for the same signature.
        inflate: temporal kernel 3 (else 1).
        inflate_style: unused by this block (mmaction2 accepts and ignores it).
        norm, act: layer options; with_cp: checkpoint the residual branch.
    """

    def __init__(self, *, inplanes: int, planes: int, spatial_stride: int = 1, temporal_stride: int = 1,
                 dilation: int = 1, downsample: Optional[nn.Module] = None, style: str = "pytorch",
                 inflate: bool = True, inflate_style: str = "3x1x1", norm: BN3dOptions = BN3dOptions(),
                 act: ReLUOptions = ReLUOptions(), with_cp: bool = False):
        super().__init__()
        t = 3 if inflate else 1
        self.conv1 = ConvModule3d(inplanes, planes, (t, 3, 3), stride=(temporal_stride, spatial_stride,
                                  spatial_stride), padding=(t // 2, dilation, dilation),
                                  dilation=(1, dilation, dilation), norm=norm, act=act)
        self.conv2 = ConvModule3d(planes, planes, (t, 3, 3), padding=(t // 2, 1, 1), norm=norm, act=None)
        self._finish(downsample, act, with_cp)


class Bottleneck3d(_Block3d):
    """1x1 -> 3x3 -> 1x1 convs, ``planes * 4`` out; ``conv2`` carries the dilation.

    The strides sit on ``conv2`` (``style="pytorch"``) or on ``conv1`` (``"caffe"``). With ``inflate``,
    ``inflate_style="3x1x1"`` makes ``conv1`` 3x1x1 and ``conv2`` 1x3x3; ``"3x3x3"`` makes ``conv1``
    1x1x1 and ``conv2`` 3x3x3; without, they are 1x1x1 and 1x3x3. Temporal padding is ``k_t // 2``.

    Args: as :class:`BasicBlock3d`.
    """

    expansion = 4
    last = "conv3"

    def __init__(self, *, inplanes: int, planes: int, spatial_stride: int = 1, temporal_stride: int = 1,
                 dilation: int = 1, downsample: Optional[nn.Module] = None, style: str = "pytorch",
                 inflate: bool = True, inflate_style: str = "3x1x1", norm: BN3dOptions = BN3dOptions(),
                 act: ReLUOptions = ReLUOptions(), with_cp: bool = False):
        super().__init__()
        t1, t2 = (3, 1) if inflate_style == "3x1x1" else (1, 3)
        if not inflate:
            t1, t2 = 1, 1
        strides = (temporal_stride, spatial_stride, spatial_stride)
        s1, s2 = ((1, 1, 1), strides) if style == "pytorch" else (strides, (1, 1, 1))
        self.conv1 = ConvModule3d(inplanes, planes, (t1, 1, 1), stride=s1, padding=(t1 // 2, 0, 0), norm=norm,
                                  act=act)
        self.conv2 = ConvModule3d(planes, planes, (t2, 3, 3), stride=s2, padding=(t2 // 2, dilation, dilation),
                                  dilation=(1, dilation, dilation), norm=norm, act=act)
        self.conv3 = ConvModule3d(planes, planes * 4, 1, norm=norm, act=None)
        self._finish(downsample, act, with_cp)
