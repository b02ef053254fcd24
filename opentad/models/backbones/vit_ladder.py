"""Side-tuning (AdaTAD's "ladder" variant): a frozen ViT with a trainable side network.

The ViT runs without autograd; the outputs of the blocks in ``adapter_index``
feed a ladder of temporal adapters (no residual inside them) whose outputs
are summed onto the last tapped feature map::

    out = f[-1] + sum_i ladder_i(f[i])

Only the ladder trains, so no activation of the ViT is kept for backward.
State-dict names as upstream: ``ladders.adapters.{i}.{down_proj,up_proj,dwconv,conv,gamma}``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, List, Sequence, Tuple

import torch
import torch.utils.checkpoint as cp
from torch import Tensor, nn

from opentad.models.backbones.vit import VideoViT
from opentad.models.bricks.attention_backend import prefer_attention_kernels
from opentad.models.bricks.vit_adapter import AdapterSpec, tia_adapter_factory
from opentad.registry import BACKBONES

__all__ = ["LadderNetwork", "VisionTransformerLadder"]


class LadderNetwork(nn.Module):
    """Side adapters, one per tapped block.

    Args:
        depth: number of tapped blocks.
        embed_dims: token width ``C``.
        temporal_size: time steps of one video.
        mlp_ratio: adapter hidden ratio.
        with_cp: checkpoint each adapter (``use_reentrant=False``).
    """

    def __init__(
        self, *, depth: int, embed_dims: int, temporal_size: int, mlp_ratio: float = 0.25, with_cp: bool = False
    ):
        super().__init__()
        self.with_cp = with_cp
        specs = [
            AdapterSpec(block_index=i, embed_dims=embed_dims, mlp_ratio=mlp_ratio, temporal_size=temporal_size)
            for i in range(depth)
        ]
        self.adapters = nn.ModuleList(tia_adapter_factory(dataclasses.replace(s, residual=False)) for s in specs)

    def forward(self, feats: List[Tensor], grid: Tuple[int, int]) -> Tensor:
        """Sum the side branches onto ``feats[-1]``; each feat is ``[B, N, C]``."""
        out = feats[-1]
        for adapter, feat in zip(self.adapters, feats):
            if self.with_cp and torch.is_grad_enabled():
                out = out + cp.checkpoint(adapter, feat, grid, use_reentrant=False)
            else:
                out = out + adapter(feat, grid)
        return out


@BACKBONES.register_module()
class VisionTransformerLadder(VideoViT):
    """Frozen VideoMAE ViT + ladder side network (upstream ``VisionTransformerLadder``).

    Always returns the feature map ``[B, C, t, h, w]``; the ViT has no final
    norm. The ViT's dropout and stochastic depth are off (it is kept in eval
    mode), as upstream.

    Args:
        return_feat_map: must be True (upstream's key).
        with_cp: checkpoint the side adapters (the ViT runs without autograd).
        adapter_mlp_ratio: side adapters' hidden width ``int(embed_dims * ratio)``.
        total_frames: frames per video window.
        adapter_index: the tapped blocks (default 6..11).
        **kwargs: the :class:`~opentad.models.backbones.vit.VideoViT` keys.

    Raises:
        ValueError: ``return_feat_map=False``, empty or out-of-range ``adapter_index``.
    """

    def __init__(
        self,
        *,
        return_feat_map: bool = True,
        with_cp: bool = False,
        adapter_mlp_ratio: float = 0.25,
        total_frames: int = 768,
        adapter_index: Sequence[int] = tuple(range(6, 12)),
        **kwargs: Any,
    ):
        if not return_feat_map:
            raise ValueError("VisionTransformerLadder always returns a feature map; set return_feat_map=True")
        super().__init__(return_feat_map=True, with_cp=False, final_norm=False, **kwargs)
        depth = len(self.blocks)
        index = sorted(set(int(i) for i in adapter_index))
        if not index or index[0] < 0 or index[-1] >= depth:
            raise ValueError(f"VisionTransformerLadder: adapter_index {list(adapter_index)} must lie in 0..{depth - 1}")
        self.adapter_index = index
        self.ladders = LadderNetwork(
            depth=len(index),
            embed_dims=self.embed_dims,
            temporal_size=total_frames // self.tubelet_size,
            mlp_ratio=adapter_mlp_ratio,
            with_cp=with_cp,
        )
        self.freeze()
        self.log_parameter_counts()

    def train(self, mode: bool = True) -> "VisionTransformerLadder":
        """Switch modes; the frozen ViT always stays in eval mode."""
        super().train(mode)
        self.patch_embed.eval()
        self.pos_drop.eval()
        self.blocks.eval()
        return self

    def freeze(self) -> None:
        """Only the ladder trains."""
        self.requires_grad_(False)
        self.ladders.requires_grad_(True)

    @torch.no_grad()
    def forward_vit(self, x: Tensor) -> Tuple[List[Tensor], Tuple[int, int, int]]:
        """Run the frozen ViT; return the tapped block outputs ``[B, N, C]`` and the grid."""
        prefer_attention_kernels(x.device, self.memory_policy.attention_kernels)
        x, grid = self.embed(x)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x, grid[1:])
            if i in self.adapter_index:
                feats.append(x)
            if i >= self.adapter_index[-1]:
                break
        return feats, grid

    def forward(self, x: Tensor) -> Tensor:
        """Frames ``[B, 3, T, H, W]`` -> ``[B, C, t, h, w]``."""
        feats, grid = self.forward_vit(x)
        out = self.ladders(feats, grid[1:])
        return self.output(out, grid)
