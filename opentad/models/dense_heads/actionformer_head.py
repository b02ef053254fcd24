"""ActionFormer's head: the anchor-free head under its upstream name."""
from __future__ import annotations

from opentad.models.dense_heads.anchor_free_head import AnchorFreeHead
from opentad.registry import HEADS

__all__ = ["ActionFormerHead"]


@HEADS.register_module()
class ActionFormerHead(AnchorFreeHead):
    """:class:`AnchorFreeHead` with ActionFormer's defaults (the same keys and values)."""
