"""Blocks whose layer norms run fused with the fp8 products after them, in compiled code (``custom.fused_fp8_norms``).

The memory policy switches each :class:`~opentad.models.bricks.vit.Block`
to :class:`FP8NormBlock` (same state, same state-dict keys, only its two
branch hooks differ). Inside a compiled block
(:mod:`.compile`) where the fp8 products apply, its branches compute::

    attention:  attn.attend(FP8NormProductFunction(x; norm1, qkv) + qkv_bias)   (:mod:`.fp8_norm`)
    MLP:        FP8MLPFunction(x; norm2, fc1, fc2)                              (:mod:`.fp8_mlp`, GELU fused too)

instead of ``attn(norm1(x))`` and ``mlp(norm2(x))``: each norm's bf16
output is never written, its rows read once. Everywhere else (eager blocks,
a norm that trains or is not exactly a layer norm, a layer not fp8 "all", an
attention that is not exactly :class:`~opentad.models.bricks.vit.Attention`,
an MLP that is not exactly :class:`~.frozen_mlp.FrozenFP8MLP`, forward hooks
on any of them) a branch computes as the plain block does.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable, Optional

import torch
from torch import Tensor, nn

from opentad.models.bricks.vit import Attention, Block
from opentad.models.memory.fp8_matmul import fp8_frozen_linear_all
from opentad.models.memory.fp8_mlp import fp8_mlp
from opentad.models.memory.fp8_norm import fp8_norm_linear, frozen_layer_norm, hook_free
from opentad.models.memory.frozen_mlp import FrozenFP8MLP, exact_gelu_without_dropout, unused_output_mlp

__all__ = ["FP8NormBlock", "set_fp8_norm_blocks", "fusable_norms", "log_fusable_norms"]

logger = logging.getLogger(__name__)


class FP8NormBlock(Block):
    """:class:`~opentad.models.bricks.vit.Block` whose ``norm1``/``qkv`` and ``norm2``/MLP run fused in compiled
    code (module docstring)."""

    def attention_branch(self, x: Tensor) -> Tensor:
        """``[B, N, C] -> [B, N, C]``."""
        if torch.compiler.is_compiling() and type(self.attn) is Attention and hook_free(self.attn):
            qkv = fp8_norm_linear(self.norm1, self.attn.qkv, x)
            if qkv is not None:
                bias = self.attn.qkv_bias()
                return self.attn.attend(qkv if bias is None else qkv + bias.to(qkv.dtype))
        return super().attention_branch(x)

    def mlp_branch(self, x: Tensor, mlp: Optional[Callable[[nn.Module, Tensor], Tensor]] = None) -> Tensor:
        """``[B, N, C] -> [B, N, C]``; ``mlp``: None, or :func:`~.frozen_mlp.unused_output_mlp` (fused too: the
        output left uninitialised), or another (computed as the plain block does)."""
        fusable = mlp is None or mlp is unused_output_mlp
        if torch.compiler.is_compiling() and fusable and type(self.mlp) is FrozenFP8MLP \
                and exact_gelu_without_dropout(self.mlp) and hook_free(self.mlp, *self.mlp.modules()):
            out = fp8_mlp(self.mlp.layers[0][0], self.mlp.layers[1], x, unused=mlp is not None, norm=self.norm2)
            if out is not None:
                return out
        return super().mlp_branch(x, mlp)


def set_fp8_norm_blocks(blocks: Iterable[nn.Module], on: bool) -> int:
    """Make ``blocks`` of class :class:`~opentad.models.bricks.vit.Block` :class:`FP8NormBlock` (``on``), or
    plain blocks again; blocks of other classes are left as built.

    Returns:
        the number of blocks of class :class:`FP8NormBlock` after the call.
    """
    count = 0
    for block in blocks:
        if type(block) in (Block, FP8NormBlock):
            block.__class__ = FP8NormBlock if on else Block
            count += on
    return count


def _fp8_all(layer: nn.Module) -> bool:
    return vars(layer).get("frozen_matmul") is fp8_frozen_linear_all


def fusable_norms(blocks: Iterable[nn.Module]) -> int:
    """How many norms of the :class:`FP8NormBlock` blocks the fused path can take, from the modules alone (the call's
    own checks, bf16 inputs and weights made before the step, come on top): a frozen layer norm of exactly
    its class before a frozen product that is fp8 both ways (``norm1`` before ``attn.qkv`` of exactly
    :class:`~opentad.models.bricks.vit.Attention`; ``norm2`` before an MLP of exactly
    :class:`~.frozen_mlp.FrozenFP8MLP` whose two layers are). LoRA on ``qkv`` or ``fc1`` rules a norm out."""
    count = 0
    for block in blocks:
        if type(block) is not FP8NormBlock:
            continue
        pairs = ((block.norm1, type(block.attn) is Attention and _fp8_all(block.attn.qkv)),
                 (block.norm2, type(block.mlp) is FrozenFP8MLP and _fp8_all(block.mlp.layers[0][0])
                  and _fp8_all(block.mlp.layers[1])))
        count += sum(ok and frozen_layer_norm(norm) for norm, ok in pairs)
    return count


def log_fusable_norms(blocks: Iterable[nn.Module]) -> int:
    """Log how many of the blocks' norms ``fused_fp8_norms`` can fuse (:func:`fusable_norms`), as a warning
    when none; returns the count."""
    blocks = [b for b in blocks if type(b) is FP8NormBlock]
    count = fusable_norms(blocks)
    if blocks and count == 0:
        logger.warning("fused_fp8_norms: none of the %d blocks' layer norms can be fused: each needs a frozen norm "
                       "before a frozen 4-bit layer with frozen_fp8='all' (not a LoRA layer: "
                       "backbone_lora_targets on qkv or fc1 rules it out) and, for norm2, fused_fp8_mlp",
                       len(blocks))
    elif blocks:
        logger.info("fused_fp8_norms: %d of the %d layer norms of %d blocks fused with their product's fp8 rows",
                    count, 2 * len(blocks), len(blocks))
    return count

