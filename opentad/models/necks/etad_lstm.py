"""ETAD's neck: forward and backward LSTM memories fused with a local conv branch."""
from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from opentad.models.bricks.conv import ConvModule
from opentad.registry import NECKS

__all__ = ["LSTMNeck"]

logger = logging.getLogger(__name__)

_GROUPS = dict(groups=4)
_GN = dict(type="GN", num_groups=16)
_RELU = dict(type="relu")


@NECKS.register_module()
class LSTMNeck(nn.Module):
    """``[B, C, T]`` -> ``[B, C_out, T]``: upstream ETAD's ``LSTMNeck``.

    A forward LSTM (``mem_f``) reads the sequence, a backward one (``mem_b``)
    reads it reversed; each is followed by a conv (``layer2_f`` / ``layer2_b``,
    ``C -> C/2``, kernel 3), the input goes through ``layer2_d`` (``C -> C``,
    kernel 3), and ``layer3`` (kernel 1) fuses the concatenation
    ``[forward, direct, backward]`` (``2C`` channels). Every conv is a masked
    :class:`ConvModule` with ``conv_cfg``, ``norm_cfg`` and ReLU. As upstream,
    the LSTMs read padded steps too (the mask acts after each conv).

    Args:
        in_channels: ``C`` (the LSTMs' input and hidden size).
        out_channels: ``C_out``.
        conv_cfg: extra ``nn.Conv1d`` arguments of every conv (upstream's default: ``groups=4``).
        norm_cfg: the convs' norm (upstream's default: GroupNorm of 16 groups).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        conv_cfg: Optional[Mapping[str, Any]] = _GROUPS,
        norm_cfg: Optional[Mapping[str, Any]] = _GN,
    ):
        super().__init__()
        self.mem_f = nn.LSTM(input_size=in_channels, hidden_size=in_channels, num_layers=1)
        self.mem_b = nn.LSTM(input_size=in_channels, hidden_size=in_channels, num_layers=1)

        def conv(cin: int, cout: int, kernel_size: int) -> ConvModule:
            return ConvModule(
                cin,
                cout,
                kernel_size=kernel_size,
                padding=kernel_size // 2,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=_RELU,
            )

        self.layer2_f = conv(in_channels, in_channels // 2, 3)
        self.layer2_b = conv(in_channels, in_channels // 2, 3)
        self.layer2_d = conv(in_channels, in_channels, 3)
        self.layer3 = conv(in_channels * 2, out_channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x [B, C, T]``, ``mask [B, T]`` bool -> ``([B, C_out, T], mask)``."""
        self.mem_f.flatten_parameters()  # one contiguous weight block for cuDNN (a no-op on the CPU)
        self.mem_b.flatten_parameters()
        seq = x.permute(2, 0, 1)  # [T, B, C]
        forward_mem, _ = self.mem_f(seq)
        backward_mem, _ = self.mem_b(seq.flip(dims=[0]))
        forward_feat, _ = self.layer2_f(forward_mem.permute(1, 2, 0), mask)
        backward_feat, _ = self.layer2_b(backward_mem.flip(dims=[0]).permute(1, 2, 0), mask)
        direct_feat, _ = self.layer2_d(x, mask)
        return self.layer3(torch.cat((forward_feat, direct_feat, backward_feat), dim=1), mask)
