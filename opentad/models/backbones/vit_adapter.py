"""AdaTAD's backbone: a frozen VideoMAE ViT with temporal-informative adapters.

The blocks listed in ``adapter_index`` get an adapter after their MLP
residual (see :mod:`opentad.models.bricks.vit_adapter`). Only the adapters
train (unless ``freeze_vit=False``); :meth:`freeze` sets that at construction,
so a backbone built on its own trains what it would inside a detector (the
backbone wrapper calls it again after loading weights; it is idempotent).

Subclasses (e.g. a QLoRA variant) change the layers without copying the
forward by passing ``linear_factory`` (the ViT's linear layers) and
``adapter_factory`` (``AdapterSpec -> AdapterBase``) to the constructor, and
may override :meth:`on_weights_loaded` (called after the pretrained weights
are loaded) and :meth:`freeze`.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

from torch import nn

from opentad.models.backbones.vit import VideoViT
from opentad.models.bricks.vit import LinearFactory
from opentad.models.bricks.vit_adapter import (
    AdapterBase,
    AdapterFactory,
    AdapterSpec,
    plain_adapter_factory,
    tia_adapter_factory,
)
from opentad.registry import BACKBONES

__all__ = ["VisionTransformerAdapter", "ADAPTER_TYPES", "adapter_for_blocks"]

#: ``adapter_type`` config value -> default factory.
ADAPTER_TYPES: Dict[str, AdapterFactory] = {"tia": tia_adapter_factory, "plain": plain_adapter_factory}


def adapter_for_blocks(
    *,
    factory: AdapterFactory,
    indices: Sequence[int],
    depth: int,
    embed_dims: int,
    mlp_ratio: float,
    temporal_size: int,
):
    """A callable ``block_index -> adapter or None`` building adapters at ``indices``.

    Raises:
        ValueError: an index outside ``[0, depth)``.
    """
    wanted = set(int(i) for i in indices)
    bad = sorted(i for i in wanted if not 0 <= i < depth)
    if bad:
        raise ValueError(f"adapter_index {bad} outside the {depth} blocks (valid: 0..{depth - 1})")

    def build(index: int) -> Optional[nn.Module]:
        if index not in wanted:
            return None
        adapter = factory(
            AdapterSpec(block_index=index, embed_dims=embed_dims, mlp_ratio=mlp_ratio, temporal_size=temporal_size)
        )
        if not isinstance(adapter, AdapterBase):
            raise TypeError(f"adapter factory returned {type(adapter).__name__}, expected an AdapterBase")
        return adapter

    return build


@BACKBONES.register_module()
class VisionTransformerAdapter(VideoViT):
    """VideoMAE ViT with AdaTAD adapters (upstream ``VisionTransformerAdapter``).

    Args:
        img_size, patch_size, in_channels, embed_dims, depth, num_heads,
        mlp_ratio, qkv_bias, qk_scale, drop_rate, attn_drop_rate,
        drop_path_rate, norm_cfg, num_frames, tubelet_size, use_mean_pooling,
        return_feat_map, with_cp: see :class:`VideoViT` (upstream keys).
        adapter_mlp_ratio: adapter hidden width ``int(embed_dims * ratio)``.
        total_frames: frames per video window (``window_size * scale_factor``);
            the temporal convolution spans ``total_frames // tubelet_size`` steps.
        adapter_index: blocks that get an adapter.
        adapter_type: ``"tia"`` (temporal-informative, default) or ``"plain"``
            (no temporal mixing); ignored when ``adapter_factory`` is given.
        freeze_vit: freeze everything but the adapters (AdaTAD). False also
            trains the ViT (only sensible from random weights).
        linear_factory: makes the ViT's linear layers (default ``nn.Linear``).
        adapter_factory: makes each adapter from an :class:`AdapterSpec`.

    Raises:
        ValueError: unknown ``adapter_type``, bad ``adapter_index``,
            ``total_frames`` not a multiple of ``tubelet_size``.
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
        adapter_mlp_ratio: float = 0.25,
        total_frames: int = 768,
        adapter_index: Sequence[int] = (3, 5, 7, 11),
        adapter_type: str = "tia",
        freeze_vit: bool = True,
        linear_factory: Optional[LinearFactory] = None,
        adapter_factory: Optional[AdapterFactory] = None,
    ):
        if adapter_factory is None:
            if adapter_type not in ADAPTER_TYPES:
                raise ValueError(f"adapter_type={adapter_type!r} is not one of {sorted(ADAPTER_TYPES)}")
            adapter_factory = ADAPTER_TYPES[adapter_type]
        if total_frames % tubelet_size != 0:
            raise ValueError(f"total_frames={total_frames} must be a multiple of tubelet_size={tubelet_size}")
        super().__init__(
            img_size=img_size,
            patch_size=patch_size,
            in_channels=in_channels,
            embed_dims=embed_dims,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
            norm_cfg=norm_cfg,
            num_frames=num_frames,
            tubelet_size=tubelet_size,
            use_mean_pooling=use_mean_pooling,
            return_feat_map=return_feat_map,
            with_cp=with_cp,
            linear_factory=linear_factory,
            adapter_for_block=adapter_for_blocks(
                factory=adapter_factory,
                indices=adapter_index,
                depth=depth,
                embed_dims=embed_dims,
                mlp_ratio=adapter_mlp_ratio,
                temporal_size=total_frames // tubelet_size,
            ),
        )
        self.adapter_index = sorted(set(int(i) for i in adapter_index))
        self.freeze_vit = freeze_vit
        self.freeze()  # at construction, not in forward (upstream): train() alone never unfreezes the ViT
        self.log_parameter_counts()

    def freeze(self) -> None:
        """Adapters train (what each declares trainable); the ViT trains only if ``freeze_vit`` is False."""
        if self.freeze_vit:
            self.requires_grad_(False)
        else:
            super().freeze()
        for _, adapter in self.named_adapters():
            adapter.requires_grad_(False)
            for _, param in adapter.trainable_parameters():
                param.requires_grad_(True)
