"""Block layer norms that keep the token stream's dtype under autocast, without a float32 round trip.

CUDA autocast runs ``layer_norm`` in float32: a bf16 token stream is read,
written again as float32 (twice the bytes), normalised, written as float32
and cast back to bf16 by the next linear layer, forward and backward. In a
ViT-g step these casts were about a tenth of the eager step
(docs/benchmarks.md, run 5's "cast" column). PyTorch's layer-norm kernels
compute in float32 internally for a bf16 or fp16 input and round the output
once, so with frozen weights already stored in the stream's dtype
(``frozen_dtype``) a norm can take and return that dtype directly:

    autocast:      x (bf16) -> float32 copy -> layer_norm (float32) -> y (float32) -> bf16 copy at the next linear
    StreamLayerNorm: x (bf16) -> layer_norm (float32 inside the kernel) -> y (bf16)

Both round the same float32 result to bf16 once; the backward likewise,
where the norm's one consumer is a linear layer that rounds its input to
the autocast dtype. A LoRA layer (``backbone_lora_targets``) also feeds the
norm's output to its dropout and its own branch, where autocast's float32
value would be used unrounded and the two gradients summed in float32: the
norms before such layers stay :class:`torch.nn.LayerNorm`.
The memory policy swaps the class of the blocks' ``norm1``/``norm2``
(:func:`~.policy.apply_memory_policy`, ``stream_norms``); state and
state-dict keys are those of :class:`torch.nn.LayerNorm`.
"""
from __future__ import annotations

from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opentad.models.bricks.lora import LoRALinear

__all__ = ["StreamLayerNorm", "set_stream_norms"]


class StreamLayerNorm(nn.LayerNorm):
    """:class:`torch.nn.LayerNorm` whose output keeps the input's dtype under autocast.

    When autocast is on for ``x``'s device, ``x`` is in autocast's dtype and the
    weight (and bias) are stored in that dtype too, the norm runs with autocast
    off: ``[..., C] -> [..., C]`` in ``x.dtype``, computed in float32 inside the
    kernel. Otherwise exactly :class:`torch.nn.LayerNorm`.
    """

    def forward(self, x: Tensor) -> Tensor:
        device = x.device.type
        same = self.weight is None or (self.weight.dtype == x.dtype
                                       and (self.bias is None or self.bias.dtype == x.dtype))
        if same and device in ("cuda", "cpu") and torch.is_autocast_enabled(device) \
                and x.dtype == torch.get_autocast_dtype(device):
            with torch.autocast(device, enabled=False):
                return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return super().forward(x)


def _consumer(block: nn.Module, name: str) -> Optional[nn.Module]:
    """The layer that reads ``block.<name>``'s output: the attention's ``qkv`` or the MLP's first linear."""
    if name == "norm1":
        return getattr(getattr(block, "attn", None), "qkv", None)
    layers = getattr(getattr(block, "mlp", None), "layers", None)
    try:
        return layers[0][0]
    except (TypeError, IndexError, KeyError):
        return None


def set_stream_norms(blocks: Iterable[nn.Module], on: bool) -> int:
    """Make the ``norm1``/``norm2`` layer norms of ``blocks`` stream norms (``on``), or plain layer norms again.

    Only modules of class :class:`torch.nn.LayerNorm` or :class:`StreamLayerNorm`
    change (other norms are left as built), and a norm becomes a stream norm only
    where a plain or quantized linear layer reads it (not a LoRA layer, nor a
    layer this function does not know).

    Returns:
        the number of stream norms after the call.
    """
    count = 0
    for block in blocks:
        for name in ("norm1", "norm2"):
            norm = getattr(block, name, None)
            if type(norm) not in (nn.LayerNorm, StreamLayerNorm):
                continue
            consumer = _consumer(block, name)
            stream = on and consumer is not None and not isinstance(consumer, LoRALinear)
            norm.__class__ = StreamLayerNorm if stream else nn.LayerNorm
            count += stream
    return count
