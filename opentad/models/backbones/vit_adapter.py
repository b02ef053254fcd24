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

from typing import Any, Callable, Dict, Optional, Sequence

from torch import nn

from opentad.models.backbones.vit import BlockSlot, VideoViT
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
    *, factory: AdapterFactory, indices: Sequence[int], mlp_ratio: float, total_frames: int
) -> Callable[[BlockSlot], Optional[nn.Module]]:
    """A callable ``slot -> adapter or None`` building adapters at the blocks ``indices``.

    The temporal convolution spans ``total_frames // tubelet_size`` steps.

    Raises (when the first block is built):
        ValueError: an index outside ``[0, depth)``, ``total_frames`` not a multiple of ``tubelet_size``.
    """
    wanted = set(int(i) for i in indices)

    def build(slot: BlockSlot) -> Optional[nn.Module]:
        bad = sorted(i for i in wanted if not 0 <= i < slot.depth)
        if bad:
            raise ValueError(f"adapter_index {bad} outside the {slot.depth} blocks (valid: 0..{slot.depth - 1})")
        if total_frames % slot.tubelet_size != 0:
            raise ValueError(f"total_frames={total_frames} must be a multiple of tubelet_size={slot.tubelet_size}")
        if slot.index not in wanted:
            return None
        adapter = factory(
            AdapterSpec(
                block_index=slot.index,
                embed_dims=slot.embed_dims,
                mlp_ratio=mlp_ratio,
                temporal_size=total_frames // slot.tubelet_size,
            )
        )
        if not isinstance(adapter, AdapterBase):
            raise TypeError(f"adapter factory returned {type(adapter).__name__}, expected an AdapterBase")
        return adapter

    return build


@BACKBONES.register_module()
class VisionTransformerAdapter(VideoViT):
    """VideoMAE ViT with AdaTAD adapters (upstream ``VisionTransformerAdapter``).

    Args:
        adapter_mlp_ratio: adapter hidden width ``int(embed_dims * ratio)``.
        total_frames: frames per video window (``window_size * scale_factor``);
            the temporal convolution spans ``total_frames // tubelet_size`` steps.
        adapter_index: blocks that get an adapter.
        adapter_type: ``"tia"`` (temporal-informative, default) or ``"plain"``
            (no temporal mixing); ignored when ``adapter_factory`` is given.
        freeze_vit: freeze everything but the adapters (AdaTAD). False also
            trains the ViT (only sensible from random weights).
        adapter_factory: makes each adapter from an :class:`AdapterSpec`.
        **kwargs: the :class:`~opentad.models.backbones.vit.VideoViT` keys
            (``embed_dims``, ``depth``, ``with_cp``, ``linear_factory``, ...; upstream's).

    Raises:
        ValueError: unknown ``adapter_type``, bad ``adapter_index``,
            ``total_frames`` not a multiple of ``tubelet_size``.
    """

    def __init__(
        self,
        *,
        adapter_mlp_ratio: float = 0.25,
        total_frames: int = 768,
        adapter_index: Sequence[int] = (3, 5, 7, 11),
        adapter_type: str = "tia",
        freeze_vit: bool = True,
        adapter_factory: Optional[AdapterFactory] = None,
        **kwargs: Any,
    ):
        if adapter_factory is None:
            if adapter_type not in ADAPTER_TYPES:
                raise ValueError(f"adapter_type={adapter_type!r} is not one of {sorted(ADAPTER_TYPES)}")
            adapter_factory = ADAPTER_TYPES[adapter_type]
        build = adapter_for_blocks(
            factory=adapter_factory, indices=adapter_index, mlp_ratio=adapter_mlp_ratio, total_frames=total_frames
        )
        super().__init__(adapter_for_block=build, **kwargs)
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
