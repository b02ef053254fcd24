"""A frozen block's attention and MLP recomputed in backward a few clips at a time.

A checkpointed ViT block keeps only its input for backward, then in backward
recomputes the whole block with autograd recording and backpropagates: for
that moment every activation of the block exists for all clips of the batch
(for VideoMAE-S at batch 2, 768 frames, 160 px: ``qkv``, the attention
output, ``fc1(x)``, the residual sums, ... of 76,800 tokens), which is the
peak of the step once the block inputs are offloaded.

Attention and MLP work on each clip (dim 0 of ``[B * clips, N, C]``) on its
own; only the adapter after them mixes clips (its temporal convolution). So
when attention and MLP are frozen, :class:`ChunkedResidualFunction` runs
them without a graph in forward, keeps their input, and in backward
recomputes and backpropagates them ``chunks`` row groups at a time: the
same arithmetic, one forward pass of it as with checkpointing (less the
MLP's second product, whose output the recomputation never reads:
:func:`.frozen_mlp.output_unused`), but the
working set of a fraction of the clips (and when ``x`` needs no gradient, as in
the first block with an adapter, nothing of them is kept or recomputed at
all). The adapter is checkpointed on its
own (its input, the residual output, is kept as well: one more ``[B*clips, N,
C]`` per block, in host memory with ``offload_activations``).

Stochastic depth draws its per-row scales once in forward, so the recomputed
chunks drop the same rows. Blocks with a trainable attention or MLP (full
fine-tuning, LoRA in the ViT) or active dropout keep ordinary checkpointing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Tuple

import torch
from torch import Tensor

from .compile import rows_vary
from .dequant_cache import reuse_dequantized
from .frozen_mlp import output_unused
from .graph_rng import checkpoint_bound, drawing_for

if TYPE_CHECKING:
    from opentad.models.bricks.vit import Block

__all__ = ["ChunkedResidualFunction", "chunk_bounds", "residual_chunkable", "chunked_block_forward"]

Scales = Tuple[Optional[Tensor], Optional[Tensor]]


def chunk_bounds(rows: int, chunks: int) -> List[Tuple[int, int]]:
    """``[(start, end), ...]`` splitting ``rows`` into ``min(chunks, rows)`` near-equal parts."""
    chunks = max(1, min(int(chunks), rows))
    step = -(-rows // chunks)
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


def _slice(scales: Scales, start: int, end: int, block: "Block") -> Scales:
    """Rows ``start:end`` of the stochastic-depth factors (their rows vary, as the tokens' do)."""
    return tuple(None if s is None else rows_vary(s[start:end], block) for s in scales)  # type: ignore[return-value]


class ChunkedResidualFunction(torch.autograd.Function):
    """``block.residual(x, scales)`` evaluated and differentiated ``chunks`` row groups at a time.

    Only the input's gradient is computed: the attention and MLP must be frozen
    (:func:`residual_chunkable`). Autocast state of the forward pass is
    restored for the recomputation.
    """

    @staticmethod
    def forward(ctx, x: Tensor, block: "Block", scales: Scales, chunks: int) -> Tensor:
        device = x.device.type
        ctx.autocast = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        ctx.block, ctx.scales = block, scales
        ctx.bounds = chunk_bounds(x.shape[0], chunks)
        # the residual keeps x's layout (after the patch embedding, channels vary fastest in memory), and so
        # must this output: dropout in the adapter draws its mask in memory order
        out = torch.empty_like(x, dtype=x.dtype)
        with torch.no_grad(), reuse_dequantized():  # frozen 4-bit weights: one dequantization for all chunks
            for start, end in ctx.bounds:
                part = block.residual(rows_vary(x[start:end], block), _slice(scales, start, end, block))
                out[start:end] = part
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        enabled, dtype = ctx.autocast
        grad_x = torch.empty_like(x)
        with reuse_dequantized():  # one dequantization for every chunk's recomputation and backward
            for start, end in ctx.bounds:
                part = rows_vary(x[start:end].detach().requires_grad_(True), ctx.block)
                # the recomputed output only carries the graph: a FrozenMLP skips its fc2 product (output_unused)
                with torch.enable_grad(), torch.autocast(x.device.type, dtype=dtype, enabled=enabled), \
                        output_unused():
                    out = ctx.block.residual(part, _slice(ctx.scales, start, end, ctx.block))
                (grad_x[start:end],) = torch.autograd.grad(out, part, grad[start:end])
        return grad_x, None, None, None


def residual_chunkable(block: "Block", x: Tensor, chunks: int) -> bool:
    """Whether ``block``'s attention and MLP can run through :class:`ChunkedResidualFunction` for ``x``.

    Needs: more than one chunk and row, autograd recording, no trainable
    parameter in ``norm1``/``attn``/``norm2``/``mlp``, and no
    active dropout in them (stochastic depth, and dropout in the adapter, are fine).
    """
    if chunks <= 1 or x.shape[0] < 2 or not torch.is_grad_enabled():
        return False
    frozen = (block.norm1, block.attn, block.norm2, block.mlp)
    if any(p.requires_grad for m in frozen for p in m.parameters()):
        return False
    return not block.residual_dropout()  # the adapter may use dropout (LoRA's): its own checkpoint replays the RNG


def chunked_block_forward(block: "Block", x: Tensor, grid: Tuple[int, int], chunks: int) -> Tensor:
    """The block's forward with chunked recomputation of its residual part and a checkpointed adapter.

    Args:
        block: the block (:func:`residual_chunkable` must hold).
        x: tokens ``[B * clips, N, C]``.
        grid: the spatial token grid ``(h, w)`` (for the adapter).
        chunks: row groups of the recomputation.

    Returns:
        ``[B * clips, N, C]``.
    """
    with drawing_for(block):  # CUDA graphs: from the block's generator
        scales = (block.drop_path.scales_ahead(x), block.drop_path.scales_ahead(x))
    out = ChunkedResidualFunction.apply(x, block, scales, chunks)
    if block.adapter is None:
        return out
    return checkpoint_bound(block.adapter, block.adapter, rows_vary(out, block), grid)
