"""What a plan costs without measuring it: the analytical model of one ViT block, for the CPU and for tests.

On a GPU the budget measures its costs (:mod:`.profile`); on the CPU,
where timing one block says nothing about a GPU step, :func:`vit_block_costs`
models them from the block's shapes, in units of one multiply-add. Beside
them, what a plan keeps allocated outside the blocks' activations, counted
from the tensors themselves: held weight copies (:func:`held_copy_bytes`) and
CUDA graphs' buffers (:func:`graph_buffer_bytes`, :func:`graph_bytes`).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from opentad.models.bricks.quant import is_quantized
from opentad.models.memory.compile import is_compiled
from opentad.models.memory.frozen_mlp import FrozenMLP, input_grad_only
from opentad.models.memory.planner import BlockPlan, PlanCost

__all__ = ["graph_buffer_bytes", "graph_bytes", "held_copy_bytes", "modelled_costs", "vit_block_costs"]


def modelled_costs(
    plans: Sequence[BlockPlan],
    *,
    rows: int,
    tokens: int,
    width: int,
    hidden: int,
    element_bytes: int = 2,
    forward_seconds: float = 1.0,
    dequant_seconds: float = 0.0,
    held_bytes: int = 0,
    offload_seconds: float = 0.0,
    recompute_seconds: Optional[float] = None,
) -> Dict[BlockPlan, PlanCost]:
    """An analytical cost of one ViT block under each plan, for the CPU and for tests.

    Tokens kept by a block that is not recomputed: its input (``C``), ``q, k, v`` (``3C``), the attention
    output (``C``), the projection's input (``C``), the MLP's input (``C``), ``fc1``'s output (``hidden``)
    and the adapter's input (``C``): ``8C + hidden`` values per token. A recomputed block keeps ``C`` per token
    and needs the ``8C + hidden`` of one block (a ``1/chunks`` share with chunks, plus the input) while it
    runs its backward. Backward of a frozen block costs about one forward; recomputation one more, less the
    MLP's second product with chunks (its output is never read: :func:`.frozen_mlp.output_unused`).

    Args:
        plans: the candidate plans.
        rows: ``B * clips``; tokens: tokens per clip; width: ``C``; hidden: the MLP width.
        element_bytes: bytes per value of the token stream.
        forward_seconds: one forward of the block.
        dequant_seconds: dequantizing the block's 4-bit weights once (saved by ``hold`` at every use).
        held_bytes: the block's dequantized weight copies.
        offload_seconds: the part of an input's round trip to host memory that is not overlapped.
        recompute_seconds: the chunked backward's recomputation; None: ``forward_seconds``.
    """
    per_token = rows * tokens * element_bytes
    full, one = (8 * width + hidden) * per_token, width * per_token
    costs = {}
    for plan in plans:
        uses = 3 if plan.checkpoint else 2  # dequantizations per step: forward, (recompute,) backward
        recompute = 0.0 if not plan.checkpoint else forward_seconds
        if plan.backward_chunks > 1 and recompute_seconds is not None:
            recompute = recompute_seconds
        seconds = 2 * forward_seconds + recompute + (0 if plan.hold else uses * dequant_seconds)
        if plan.offload:
            seconds += offload_seconds
        if not plan.checkpoint:
            saved, transient = full, (3 * width + hidden) * per_token
        else:
            saved = 0 if plan.offload else one
            transient = full // plan.backward_chunks + one
        costs[plan] = PlanCost(seconds=seconds, saved=saved + (held_bytes if plan.hold else 0), transient=transient)
    return costs


def vit_block_costs(block: nn.Module, plans: Sequence[BlockPlan], rows: int, tokens: int, width: int,
                    dtype: torch.dtype) -> Dict[BlockPlan, PlanCost]:
    """:func:`modelled_costs` of a ViT block, times in units of one multiply-add: the forward's linear
    layers ``rows * tokens * (4 C^2 + 2 C hidden)``, the chunked recomputation's ``rows * tokens *
    (4 C^2 + C hidden)`` where the recomputation skips ``fc2`` (a frozen MLP, :func:`~.frozen_mlp.input_grad_only`,
    run as a :class:`~.frozen_mlp.FrozenMLP` or in a compiled block; else a whole forward), a dequantization
    about 8 per weight.

    Args:
        block: the ViT block (its MLP's width and its 4-bit layers' weights are read).
        plans: the candidate plans.
        rows: ``B * clips``; tokens: tokens per clip; width: ``C``.
        dtype: the token stream's dtype (bytes per kept value, and per held weight).
    """
    hidden = block.mlp.layers[0][0].out_features if hasattr(block, "mlp") else 4 * width
    weights = sum(m.in_features * m.out_features for m in block.modules() if is_quantized(m))
    size = torch.empty((), dtype=dtype).element_size()
    mlp = getattr(block, "mlp", None)
    # the chunked recomputation skips fc2: eagerly a FrozenMLP's, compiled any frozen MLP's (where fc2's weight is a
    # tensor: held, fp8 or float; a packed 4-bit fc2 without a held copy computes it all, which this model ignores)
    skips = mlp is not None and input_grad_only(mlp) and (isinstance(mlp, FrozenMLP) or is_compiled(block))
    recomputed_mlp = width * hidden if skips else 2 * width * hidden
    return modelled_costs(
        plans, rows=rows, tokens=tokens, width=width, hidden=hidden, element_bytes=size,
        forward_seconds=float(rows * tokens * (4 * width * width + 2 * width * hidden)),
        recompute_seconds=float(rows * tokens * (4 * width * width + recomputed_mlp)),
        dequant_seconds=8.0 * weights, held_bytes=weights * size,
    )


def held_copy_bytes(block: nn.Module) -> int:
    """Bytes of the dequantized weight copies ``block``'s layers hold (``held_weight``)."""
    total = 0
    for module in block.modules():
        held = getattr(module, "held_weight", None)
        if isinstance(held, Tensor):
            total += held.numel() * held.element_size()
    return total


def graph_bytes(policy: Any, shape: Tuple[int, ...]) -> int:
    """Bytes the policy's captured CUDA graphs of inputs of ``shape`` keep allocated (0 without graphs)."""
    graphs = getattr(policy, "graphs", None) if getattr(policy, "cuda_graphs", False) else None
    return graphs.held_bytes(shape) if graphs is not None else 0


def graph_buffer_bytes(backbone: nn.Module, blocks: List[nn.Module], shape: Tuple[int, ...],
                       dtype: torch.dtype) -> int:
    """What the CUDA graphs of ``blocks`` on an input ``shape`` (``[rows, n, C]``, ``dtype``) keep allocated
    between replays: static input, output and incoming gradient, a gradient buffer per trained parameter of the
    blocks, and one for the input when a backbone parameter outside the blocks trains (the patch embedding's
    gradient needs the input's; a trained final norm counts it too: an overestimate)."""
    tokens = int(torch.Size(shape).numel()) * torch.empty((), dtype=dtype).element_size()
    inside = {id(p): p for b in blocks for p in b.parameters() if p.requires_grad}
    grads = sum(p.numel() * p.element_size() for p in inside.values())
    outside = any(p.requires_grad and id(p) not in inside for p in backbone.parameters())
    return 3 * tokens + grads + (tokens if outside else 0)
