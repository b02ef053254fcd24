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

from typing import Callable, Iterable, Optional

import torch
from torch import Tensor, nn

from opentad.models.bricks.vit import Attention, Block
from opentad.models.memory.fp8_mlp import fp8_mlp
from opentad.models.memory.fp8_norm import fp8_norm_linear, hook_free
from opentad.models.memory.frozen_mlp import FrozenFP8MLP, exact_gelu_without_dropout, unused_output_mlp

__all__ = ["FP8NormBlock", "set_fp8_norm_blocks"]


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
    """Make ``blocks`` of class :class:`~opentad.models.bricks.vit.Block` :class:`FP8NormBlock`\\ s (``on``), or
    plain blocks again; blocks of other classes are left as built.

    Returns:
        the number of :class:`FP8NormBlock`\\ s after the call.
    """
    count = 0
    for block in blocks:
        if type(block) in (Block, FP8NormBlock):
            block.__class__ = FP8NormBlock if on else Block
            count += on
    return count
