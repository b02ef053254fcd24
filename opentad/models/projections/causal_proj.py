"""CausalTAD's projection (Liu et al. 2024): hybrid causal Mamba / causal attention blocks."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from opentad.models.bricks.mamba import MixtureCausalBlock
from opentad.models.bricks.misc import AffineDropPath
from opentad.models.projections.mamba_proj import SSMPyramidProj, masked_max_pool
from opentad.registry import PROJECTIONS

__all__ = ["CausalProj", "HybridCausalBlock"]


class HybridCausalBlock(nn.Module):
    """``mask * (x + drop_path(mixer(LN(x))))``, then an optional masked max-pool (kernel 3, stride 2).

    Args:
        n_embd: channels ``C``.
        stride: 1, or 2 to halve the length.
        kernel_size: causal conv kernel of the scan.
        expand: ``d_inner = expand * C`` of the mixer.
        num_head: attention heads of the mixer.
        drop_path_rate: > 0 adds a per-channel scale (``drop_path.scale``) with drop path.

    Raises:
        ValueError: ``stride`` other than 1 or 2.
    """

    def __init__(
        self,
        n_embd: int,
        *,
        stride: int = 1,
        kernel_size: int = 4,
        expand: int = 2,
        num_head: int = 4,
        drop_path_rate: float = 0.3,
    ):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"HybridCausalBlock stride must be 1 or 2, got {stride}")
        self.norm = nn.LayerNorm(n_embd, eps=1e-6)
        self.block = MixtureCausalBlock(n_embd, d_conv=kernel_size, expand=expand, num_head=num_head)
        self.downsample = nn.MaxPool1d(kernel_size=3, stride=2, padding=1) if stride > 1 else None
        if drop_path_rate > 0:
            self.drop_path = AffineDropPath(n_embd, drop_prob=drop_path_rate, transpose=True)
        else:
            self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x [B, C, T]``, ``mask [B, T]`` -> ``(x [B, C, T'], mask [B, T'])``."""
        x = x.transpose(1, 2)
        x = (x + self.drop_path(self.block(self.norm(x)))).transpose(1, 2)
        x = x * mask[:, None].to(x.dtype)
        if self.downsample is not None:
            x, mask = masked_max_pool(x, mask, self.downsample)
        return x, mask


@PROJECTIONS.register_module()
class CausalProj(SSMPyramidProj):
    """CausalTAD's projection: :class:`~opentad.models.projections.mamba_proj.SSMPyramidProj` of
    :class:`HybridCausalBlock`.

    Args:
        in_channels, out_channels, arch, conv_cfg, norm_cfg, use_abs_pe,
            max_seq_len, input_pdrop: see ``SSMPyramidProj``.
        mamba_kernel_size: causal conv kernel of the scans.
        channel_expand: ``d_inner = channel_expand * C``.
        num_head: attention heads.
        drop_path_rate: drop-path rate of every block.

    Raises:
        ValueError: as ``SSMPyramidProj``; ``num_head`` not dividing ``d_inner``.
    """

    def __init__(
        self,
        *,
        in_channels: Union[int, Sequence[int]],
        out_channels: Union[int, Sequence[int]],
        arch: Sequence[int] = (2, 2, 5),
        conv_cfg: Optional[Mapping[str, Any]] = None,
        norm_cfg: Optional[Mapping[str, Any]] = None,
        use_abs_pe: bool = False,
        max_seq_len: int = 2304,
        input_pdrop: float = 0.0,
        mamba_kernel_size: int = 4,
        channel_expand: int = 2,
        num_head: int = 4,
        drop_path_rate: float = 0.3,
    ):
        def block(width: int, stride: int) -> nn.Module:
            return HybridCausalBlock(
                width,
                stride=stride,
                kernel_size=mamba_kernel_size,
                expand=channel_expand,
                num_head=num_head,
                drop_path_rate=drop_path_rate,
            )

        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            arch=arch,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            use_abs_pe=use_abs_pe,
            max_seq_len=max_seq_len,
            input_pdrop=input_pdrop,
            block=block,
        )
