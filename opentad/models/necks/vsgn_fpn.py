"""VSGN's decoder (Zhao et al., ICCV 2021): a top-down path fusing each encoder level with the upsampled one above."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn as nn

from opentad.models.utils.misc import apply_mask
from opentad.registry import NECKS

__all__ = ["VSGNFPN"]


def _conv_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU(inplace=True))


def _up_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    up = nn.ConvTranspose1d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, output_padding=1)
    return nn.Sequential(up, nn.ReLU(inplace=True))


@NECKS.register_module()
class VSGNFPN(nn.Module):
    """Top-down pyramid: ``d_top = transit(e_top)``, ``d_i = fuse_i(enc_i(e_i) + dec_i(d_{i+1}))``.

    ``transit``, ``enc`` and ``fuse`` are a kernel-3 conv with ReLU, ``dec`` a
    transposed conv (kernel 3, ``stride=scale_factor``, output padding 1) with
    ReLU, which doubles the length for the default factor 2, so level
    lengths must halve exactly. Module lists are indexed from the top: entry
    ``i - 1`` serves decoder step ``i`` (level ``num_levels - 1 - i``). The
    outputs are masked; masks pass through.

    Args:
        in_channels: channels of the encoder levels.
        out_channels: channels of the decoder levels (equal to ``in_channels``: the
            same convs take both).
        num_levels: pyramid levels.
        scale_factor: the length ratio of consecutive levels.
    """

    def __init__(self, *, in_channels: int, out_channels: int, num_levels: int, scale_factor: int = 2):
        super().__init__()
        self.num_levels = num_levels
        self.scale_factor = scale_factor
        steps = range(num_levels - 1)
        self.levels_transit = _conv_relu(in_channels, out_channels)
        self.levels_enc = nn.ModuleList(_conv_relu(in_channels, out_channels) for _ in steps)
        self.levels_dec = nn.ModuleList(_up_relu(in_channels, out_channels, scale_factor) for _ in steps)
        self.levels_fuse = nn.ModuleList(_conv_relu(in_channels, out_channels) for _ in steps)

    def forward(
        self, feat_list: Sequence[torch.Tensor], mask_list: Sequence[torch.Tensor]
    ) -> Tuple[List[torch.Tensor], Sequence[torch.Tensor]]:
        """Levels ``[B, C, T_i]`` (finest first) and masks ``[B, T_i]`` -> decoded levels, finest first, masked.

        Raises:
            ValueError: not ``num_levels`` levels.
        """
        if len(feat_list) != self.num_levels:
            raise ValueError(f"VSGNFPN: expected {self.num_levels} levels, got {len(feat_list)}")
        top_down = list(feat_list)[::-1]
        decoded = [self.levels_transit(top_down[0])]
        for i in range(1, self.num_levels):
            enc = self.levels_enc[i - 1](top_down[i])
            dec = self.levels_dec[i - 1](decoded[-1])
            decoded.append(self.levels_fuse[i - 1](enc + dec))
        decoded = decoded[::-1]
        return [apply_mask(feat, mask) for feat, mask in zip(decoded, mask_list)], mask_list
