"""Temporal evaluation heads of G-TAD (GCNeXt branches) and TSI (local and global boundary branches).

Both are :class:`TemporalEvaluationHead` with other layers; targets (startness,
endness) and the balanced BCE are the base's.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.bricks.conv import ConvModule
from opentad.models.bricks.gcnext import GCNeXt
from opentad.models.dense_heads.tem_head import TemporalEvaluationHead
from opentad.registry import HEADS

__all__ = ["GCNextTemporalEvaluationHead", "LocalGlobalTemporalEvaluationHead"]

#: logits of TSI's head: local start, local end, global start, global end, each ``[B, T]``
BoundaryLogits = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@HEADS.register_module()
class GCNextTemporalEvaluationHead(TemporalEvaluationHead):
    """G-TAD's TEM: each branch is ``GCNeXt(C, C, k=3, groups=32) -> ConvModule(C, k, 1)``.

    Keys ``tem.{i}.0.{tconvs,sconvs}.*``, ``tem.{i}.1.conv.*`` (``tem.0.*``,
    ``tem.1.*`` when ``shared``), as upstream.

    Args:
        in_channels, num_classes, loss, shared: as :class:`TemporalEvaluationHead`
            (upstream's G-TAD head takes no ``conv_cfg``).
    """

    def __init__(self, *, in_channels: int, num_classes: int, loss: Mapping[str, Any], shared: bool = False):
        super().__init__(in_channels=in_channels, num_classes=num_classes, loss=loss, shared=shared)

    def make_branch(self, out_channels: int) -> nn.Module:
        """``[B, C, T] -> [B, out_channels, T]`` through a GCNeXt block."""
        return nn.Sequential(
            GCNeXt(in_channels=self.in_channels, out_channels=self.in_channels, k=3, groups=32),
            ConvModule(self.in_channels, out_channels, kernel_size=1),
        )


def _conv(in_channels: int, out_channels: int) -> nn.Conv1d:
    return nn.Conv1d(in_channels, out_channels, kernel_size=3, padding=1, groups=4)


def _up(in_channels: int, out_channels: int, output_padding: int = 0) -> nn.ConvTranspose1d:
    return nn.ConvTranspose1d(in_channels, out_channels, kernel_size=2, stride=2, output_padding=output_padding, groups=4)


@HEADS.register_module()
class LocalGlobalTemporalEvaluationHead(TemporalEvaluationHead):
    """TSI's boundary module: a local branch and a nested U-Net global branch, each predicting start and end.

    Local: ``relu(conv3(x)) -> conv1`` per boundary (``local_conv1d_{s,e}``,
    ``local_conv1d_{s,e}_out``, 256 hidden channels). Global: grouped convs at
    4 scales (128, 256, 512, 1024 channels, max-pooled by 2) joined by
    transposed convs in nested skip paths (``x{i}_{j}``, ``up*``; no
    activation, as upstream), then ``global_{s,e}_out``. The loss is
    ``0.5 ((l_s + l_e) + (g_s + g_e))`` of the balanced BCE of each logit map
    against startness and endness. Keys are upstream's; there is no ``tem``.

    Args:
        in_channels: input channels (a multiple of 4).
        loss: ``dict(pos_thresh=...)``.
        padding: output padding of the deepest transposed conv (for lengths not divisible by 8).
    """

    def __init__(self, *, in_channels: int, loss: Mapping[str, Any], padding: int = 0):
        boundary = dict(loss, gt_type=["startness", "endness"])
        super().__init__(in_channels=in_channels, num_classes=2, loss=boundary)
        c1, c2, c3, c4 = 128, 256, 512, 1024
        self.local_conv1d_s = _conv(in_channels, 256)
        self.local_conv1d_s_out = nn.Conv1d(256, 1, kernel_size=1)
        self.local_conv1d_e = _conv(in_channels, 256)
        self.local_conv1d_e_out = nn.Conv1d(256, 1, kernel_size=1)
        self.pool = nn.MaxPool1d(kernel_size=2, stride=2)
        self.x1_1, self.x2_1, self.x3_1, self.x4_1 = _conv(in_channels, c1), _conv(c1, c2), _conv(c2, c3), _conv(c3, c4)
        self.up41_to_32 = _up(c4, c3, output_padding=padding)
        self.x3_2 = _conv(2 * c3, c3)
        self.up31_to_22, self.x2_2 = _up(c3, c2), _conv(2 * c2, c2)
        self.up32_to_23, self.x2_3 = _up(c3, c2), _conv(3 * c2, c2)
        self.up21_to_12, self.x1_2 = _up(c2, c1), _conv(2 * c1, c1)
        self.up22_to_13, self.x1_3 = _up(c2, c1), _conv(3 * c1, c1)
        self.up23_to_14, self.x1_4 = _up(c2, c1), _conv(4 * c1, c1)
        self.global_s_out = nn.Conv1d(c1, 1, kernel_size=1)
        self.global_e_out = nn.Conv1d(c1, 1, kernel_size=1)

    def make_tem(self) -> None:
        """No ``tem`` module: the branches are attributes of the head (upstream's keys)."""
        return None

    def global_features(self, x: torch.Tensor) -> torch.Tensor:
        """The nested U-Net: ``[B, C, T] -> [B, 128, T]``."""
        x1_1 = self.x1_1(x)
        x2_1 = self.x2_1(self.pool(x1_1))
        x3_1 = self.x3_1(self.pool(x2_1))
        x4_1 = self.x4_1(self.pool(x3_1))
        x3_2 = self.x3_2(torch.cat((x3_1, self.up41_to_32(x4_1)), dim=1))
        x2_2 = self.x2_2(torch.cat((x2_1, self.up31_to_22(x3_1)), dim=1))
        x2_3 = self.x2_3(torch.cat((x2_1, x2_2, self.up32_to_23(x3_2)), dim=1))
        x1_2 = self.x1_2(torch.cat((x1_1, self.up21_to_12(x2_1)), dim=1))
        x1_3 = self.x1_3(torch.cat((x1_1, x1_2, self.up22_to_13(x2_2)), dim=1))
        return self.x1_4(torch.cat((x1_1, x1_2, x1_3, self.up23_to_14(x2_3)), dim=1))

    def predict(self, x: torch.Tensor) -> BoundaryLogits:
        """Logits ``(local_s, local_e, global_s, global_e)``, each ``[B, T]``, of ``x [B, C, T]``."""
        local_s = self.local_conv1d_s_out(F.relu(self.local_conv1d_s(x))).squeeze(1)
        local_e = self.local_conv1d_e_out(F.relu(self.local_conv1d_e(x))).squeeze(1)
        feat = self.global_features(x)
        return local_s, local_e, self.global_s_out(feat).squeeze(1), self.global_e_out(feat).squeeze(1)

    def losses(self, pred: BoundaryLogits, gt_segments: Sequence[torch.Tensor]) -> torch.Tensor:
        """``0.5 * ((l_s + l_e) + (g_s + g_e))`` of the balanced BCE of each map's sigmoid."""
        local_s, local_e, global_s, global_e = pred
        starts, ends = self.prepare_targets(gt_segments, tscale=local_s.shape[-1])
        local = self.tem_loss(local_s.sigmoid(), starts) + self.tem_loss(local_e.sigmoid(), ends)
        global_ = self.tem_loss(global_s.sigmoid(), starts) + self.tem_loss(global_e.sigmoid(), ends)
        return 0.5 * (local + global_)
