"""VideoMAE / VideoMAEv2 vision transformers for end-to-end TAD.

:class:`VideoViT` holds what every variant shares (tubelet embedding, the
fixed sine-cosine position table, the blocks, the output layout) and takes
two seams: a *linear factory* for the transformer's linear layers and an
*adapter-for-block* callable giving each block its adapter (or None). The
variants only choose those and their freezing policy:

* :class:`VisionTransformerCP` (upstream's name): the plain ViT, fully
  trainable or with the first ``frozen_layers`` blocks frozen;
* :class:`~opentad.models.backbones.vit_adapter.VisionTransformerAdapter`:
  the frozen ViT with AdaTAD's temporal-informative adapters;
* :class:`~opentad.models.backbones.vit_ladder.VisionTransformerLadder`:
  side-tuning.

What trains is decided by :meth:`VideoBackbone.freeze`, never in forward:
each variant calls it at the end of its constructor (a backbone built on its
own trains what it would inside a detector), and the backbone wrapper calls
it again after loading pretrained weights (it is idempotent).

:class:`VideoBackbone`, :class:`BlockSlot` and :func:`layer_norm_eps` live in
:mod:`.video_backbone` (shared with backbones that are no ViT) and are
importable from here as before.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from opentad.models.backbones.video_backbone import AdapterForBlock, BlockSlot, VideoBackbone, layer_norm_eps
from opentad.models.bricks.attention_backend import log_attention_backend, prefer_attention_kernels
from opentad.models.bricks.vit import (
    Block,
    LinearFactory,
    PatchEmbed3D,
    default_linear_factory,
    get_sinusoid_encoding,
    resize_pos_embed,
)
from opentad.models.bricks.vit_adapter import AdapterBase
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from opentad.models.utils.qlora import count_adapter_parameters
from opentad.registry import BACKBONES

logger = logging.getLogger(__name__)

__all__ = [
    "BlockSlot",
    "VideoBackbone",
    "VideoViT",
    "VisionTransformerCP",
    "layer_norm_eps",
]


class VideoViT(VideoBackbone):
    """VideoMAE ViT: tubelet embedding, sine-cosine positions, ``depth`` blocks.

    Input frames ``[B, 3, T, H, W]`` with ``T == num_frames``; ``H, W`` may
    differ from ``img_size`` (the position table is then resized bicubically
    in space, as upstream).

    Args:
        img_size: frame size the position table is made for.
        patch_size: spatial patch (16; 14 for VideoMAEv2-g).
        in_channels: input channels.
        embed_dims, depth, num_heads, mlp_ratio: transformer size.
        qkv_bias, qk_scale, drop_rate, attn_drop_rate, drop_path_rate: see :class:`Block`.
        norm_cfg: ``dict(type="LN", eps=1e-6)``.
        num_frames: frames of one clip (the table's temporal length is
            ``num_frames // tubelet_size``).
        tubelet_size: frames per token.
        use_mean_pooling: with ``return_feat_map=False``, return
            ``fc_norm(mean of tokens)`` (else ``norm(x)[:, 0]``).
        return_feat_map: return ``[B, C, t, h, w]``.
        with_cp: activation checkpointing of every block (the
            :class:`~opentad.models.memory.policy.MemoryPolicy`'s ``checkpoint``;
            the wrapper adds its memory options with :meth:`set_memory_policy`).
        linear_factory: makes the blocks' linear layers.
        adapter_for_block: gives each block its adapter (or None).
        final_norm: build ``norm``/``fc_norm`` (the ladder variant has none).

    Raises:
        ValueError: ``num_frames`` not a multiple of ``tubelet_size``, a bad ``norm_cfg``.
    """

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        embed_dims: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_cfg: Optional[Mapping] = None,
        num_frames: int = 16,
        tubelet_size: int = 2,
        use_mean_pooling: bool = True,
        return_feat_map: bool = False,
        with_cp: bool = False,
        linear_factory: Optional[LinearFactory] = None,
        adapter_for_block: Optional[AdapterForBlock] = None,
        final_norm: bool = True,
    ):
        super().__init__()
        if num_frames % tubelet_size != 0:
            raise ValueError(f"num_frames={num_frames} must be a multiple of tubelet_size={tubelet_size}")
        eps = layer_norm_eps(norm_cfg if norm_cfg is not None else dict(type="LN", eps=1e-6))
        self.embed_dims = embed_dims
        self.tubelet_size = tubelet_size
        self.patch_size = patch_size
        self.return_feat_map = return_feat_map
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.temporal_tokens = num_frames // tubelet_size
        self.patch_embed = PatchEmbed3D(
            in_channels=in_channels, embed_dims=embed_dims, patch_size=patch_size, tubelet_size=tubelet_size
        )
        num_patches = self.temporal_tokens * self.grid_size[0] * self.grid_size[1]
        self.register_buffer("pos_embed", get_sinusoid_encoding(num_patches, embed_dims))
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [drop_path_rate * i / (depth - 1) for i in range(depth)] if depth > 1 else [drop_path_rate] * depth
        self.blocks = nn.ModuleList(
            Block(
                embed_dims=embed_dims,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate,
                drop_path_rate=rates[i],  # stochastic depth grows linearly from 0 to drop_path_rate
                norm_eps=eps,
                linear_factory=linear_factory or default_linear_factory,
                adapter=adapter_for_block(BlockSlot(i, depth, embed_dims, tubelet_size)) if adapter_for_block else None,
            )
            for i in range(depth)
        )
        if final_norm:
            self.norm = nn.Identity() if use_mean_pooling else nn.LayerNorm(embed_dims, eps=eps)
            self.fc_norm = nn.LayerNorm(embed_dims, eps=eps) if use_mean_pooling else None
        else:
            self.norm, self.fc_norm = nn.Identity(), None
        self._init_block_weights()
        self.memory_policy = MemoryPolicy(checkpoint=with_cp)
        apply_memory_policy(self, self.memory_policy)

    def set_memory_policy(self, policy: MemoryPolicy) -> None:
        """Run the blocks as ``policy`` says (called by :func:`~opentad.models.memory.policy.apply_memory_policy`)."""
        self.memory_policy = policy

    def _init_block_weights(self) -> None:
        """VideoMAE's init of the transformer's linears: truncated N(0, 0.02), zero bias.

        Only layers that are plain ``nn.Linear`` are touched (a custom
        factory's layers, e.g. LoRA wrappers, initialise themselves);
        adapters keep their own initialisation.
        """
        with torch.no_grad():
            for block in self.blocks:
                for layer in (block.attn.qkv, block.attn.proj, block.mlp.layers[0][0], block.mlp.layers[1]):
                    if type(layer) is nn.Linear:
                        nn.init.trunc_normal_(layer.weight, std=0.02)
                        if layer.bias is not None:
                            nn.init.zeros_(layer.bias)

    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int, int]]:
        """Tokens with positions added.

        Args:
            x: frames ``[B, 3, T, H, W]``.

        Returns:
            ``[B, t*h*w, C]`` and the grid ``(t, h, w)``.

        Raises:
            ValueError: ``T // tubelet_size`` differs from ``num_frames // tubelet_size``.
        """
        x, grid = self.patch_embed(x)
        if grid[0] != self.temporal_tokens:
            raise ValueError(
                f"VideoViT: clips of {grid[0]} tokens in time, but num_frames gives {self.temporal_tokens}; "
                f"split videos into clips of num_frames frames (pre_processing_pipeline)"
            )
        pos = resize_pos_embed(self.pos_embed, self.grid_size, grid[1:])
        return self.pos_drop(x + pos.to(x.dtype)), grid

    def output(self, x: Tensor, grid: Tuple[int, int, int]) -> Tensor:
        """Final layout: ``[B, C, t, h, w]`` with ``return_feat_map``, else pooled ``[B, C]``."""
        x = self.norm(x)
        if self.return_feat_map:
            return x.reshape(x.shape[0], *grid, self.embed_dims).permute(0, 4, 1, 2, 3)
        if self.fc_norm is not None:
            return self.fc_norm(x.mean(1))
        return x[:, 0]

    def graph_free_blocks(self) -> int:
        """How many leading blocks need no autograd graph: those before the first one with a trainable parameter.

        Nothing before them trains either (patch embedding, positions), so
        they run under ``torch.no_grad()``: no checkpoint, nothing saved.
        """
        if any(p.requires_grad for p in self.patch_embed.parameters()):
            return 0
        for index, block in enumerate(self.blocks):
            if any(p.requires_grad for p in block.parameters()):
                return index
        return len(self.blocks)

    def forward(self, x: Tensor) -> Tensor:
        """Frames ``[B, 3, T, H, W]`` -> ``[B, C, t, h, w]`` (``return_feat_map``) or ``[B, C]``."""
        free = self.graph_free_blocks() if torch.is_grad_enabled() else 0
        run = self.memory_policy.run_block
        prefer_attention_kernels(x.device, self.memory_policy.attention_kernels)
        with torch.no_grad() if free else contextlib.nullcontext():
            x, grid = self.embed(x)
            if len(self.blocks):
                log_attention_backend(x, self.blocks[0].attn, dtype=self.memory_policy.stream_dtype(x))
            for block in self.blocks[:free]:
                x = run(block, x, grid[1:])
        x = self.memory_policy.run_blocks(self.blocks[free:], x, grid[1:])
        return self.output(self.memory_policy.stream(x), grid)

    def freeze(self) -> None:
        """Everything trains except ``fc_norm``, unused with ``return_feat_map`` (DDP wants no unused trainables)."""
        super().freeze()
        if self.return_feat_map and self.fc_norm is not None:
            self.fc_norm.requires_grad_(False)

    def named_adapters(self) -> Iterator[Tuple[str, AdapterBase]]:
        """``(name, adapter)`` for every adapter module."""
        return ((n, m) for n, m in self.named_modules() if isinstance(m, AdapterBase))

    def log_parameter_counts(self) -> Dict[str, int]:
        """Log and return the ViT and adapter parameter counts."""
        vit, adapters = count_adapter_parameters(self)
        logger.info(
            "%s: ViT's params: %d, adapters' params: %d, ratio: %.1f%%",
            type(self).__name__,
            vit,
            adapters,
            100.0 * adapters / max(vit, 1),
        )
        return {"vit": vit, "adapter": adapters}


@BACKBONES.register_module()
class VisionTransformerCP(VideoViT):
    """The plain VideoMAE ViT (upstream ``VisionTransformerCP``), for full fine-tuning or frozen use.

    Args:
        frozen_layers: -1 trains everything; ``k >= 0`` freezes the patch
            embedding and the first ``k`` blocks.
        **kwargs: the :class:`VideoViT` keys.

    Raises:
        ValueError: ``frozen_layers`` above the depth.
    """

    def __init__(self, *, frozen_layers: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        if frozen_layers > len(self.blocks):
            raise ValueError(f"VisionTransformerCP: frozen_layers={frozen_layers} exceeds depth={len(self.blocks)}")
        self.frozen_layers = frozen_layers
        self.freeze()
        self.log_parameter_counts()

    def freeze(self) -> None:
        """Train everything except the patch embedding and first ``frozen_layers`` blocks (if >= 0)."""
        super().freeze()
        if self.frozen_layers >= 0:
            self.patch_embed.requires_grad_(False)
            for block in self.blocks[: self.frozen_layers]:
                block.requires_grad_(False)
