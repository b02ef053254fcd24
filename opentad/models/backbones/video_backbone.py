"""What every video backbone shares, apart from any one architecture.

* :class:`VideoBackbone`: the hooks the backbone wrapper calls once, after
  building and loading weights (``on_weights_loaded``, ``freeze``); the ViTs
  of :mod:`.vit` and the R(2+1)D of :mod:`.r2plus1d_tsp` derive from it.
* :class:`BlockSlot` and :data:`AdapterForBlock`: the seam through which a
  ViT variant gives each transformer block its adapter.
* :func:`layer_norm_eps`: the epsilon of an upstream ``norm_cfg``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional

from torch import nn

__all__ = ["AdapterForBlock", "BlockSlot", "VideoBackbone", "layer_norm_eps"]


@dataclasses.dataclass(frozen=True)
class BlockSlot:
    """Where an adapter is built: block ``index`` of ``depth``, token width, frames per token."""

    index: int
    depth: int
    embed_dims: int
    tubelet_size: int


#: ``adapter_for_block(slot) -> adapter module or None``.
AdapterForBlock = Callable[[BlockSlot], Optional[nn.Module]]


class VideoBackbone(nn.Module):
    """Hooks the backbone wrapper calls once, after building and loading weights."""

    def on_weights_loaded(self) -> None:
        """Called after the pretrained weights are in (e.g. to quantize them). No-op here."""

    def freeze(self) -> None:
        """Set ``requires_grad`` of every parameter for training. Everything trains here."""
        for p in self.parameters():
            p.requires_grad_(p.is_floating_point())


def layer_norm_eps(norm_cfg: Mapping) -> float:
    """The epsilon of an upstream ``norm_cfg=dict(type="LN", eps=...)``.

    Raises:
        ValueError: a type other than ``"LN"`` or keys other than ``type``/``eps``.
    """
    extra = sorted(set(norm_cfg) - {"type", "eps"})
    if norm_cfg.get("type") != "LN" or extra:
        raise ValueError(f"norm_cfg: only dict(type='LN', eps=...) is supported, got {dict(norm_cfg)!r}")
    return float(norm_cfg.get("eps", 1e-5))
