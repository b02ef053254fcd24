"""Applying a :class:`~.policy.MemoryPolicy` to a built backbone (re-exported by :mod:`.policy`).

What changes is each module's class or a hook on it, never its state: the
frozen values' dtype, the MLPs' and layer norms' classes, the adapters'
residual, the frozen 4-bit layers' product hooks, and the blocks' compiled
forward; the policy then goes to the backbone, which runs its blocks through
it.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from opentad.models.bricks.vit import FFN, Block
from opentad.models.memory.compile import compile_blocks
from opentad.models.memory.fp8_matmul import set_fp8_products
from opentad.models.memory.fp8_norm_block import log_fusable_norms, set_fp8_norm_blocks
from opentad.models.memory.frozen_mlp import FrozenFP8MLP, FrozenMLP
from opentad.models.memory.fused_residual import set_fused_residuals
from opentad.models.memory.stream_norm import set_stream_norms

__all__ = ["apply_memory_policy", "store_frozen_in"]


def store_frozen_in(module: nn.Module, dtype: torch.dtype) -> int:
    """Cast ``module``'s frozen floating-point parameters and floating-point buffers to ``dtype`` in place.

    Parameters that require grad keep their dtype (float32 master weights
    for the optimizer); integer tensors (quantized weights) are untouched.

    Returns:
        the number of elements cast.
    """
    count = 0
    for sub in module.modules():
        for param in sub.parameters(recurse=False):
            if not param.requires_grad and param.is_floating_point() and param.dtype != dtype:
                param.data = param.data.to(dtype)
                count += param.numel()
        for name, buf in sub.named_buffers(recurse=False):
            if buf is not None and buf.is_floating_point() and buf.dtype != dtype:
                sub._buffers[name] = buf.to(dtype)
                count += buf.numel()
    return count


def apply_memory_policy(backbone: nn.Module, policy: Any) -> int:
    """Apply ``policy`` (a :class:`~.policy.MemoryPolicy`, which imports this module) to a built backbone whose
    trainable parameters are decided.

    Casts the frozen values to ``policy.frozen_dtype``, switches every
    :class:`~opentad.models.bricks.vit.FFN` to :class:`FrozenMLP` or back
    (``frozen_mlp`` without ``compile_blocks``; :class:`FrozenFP8MLP` with ``fused_fp8_mlp``; same state and
    state-dict keys, only ``forward`` differs), the blocks to :class:`~.fp8_norm_block.FP8NormBlock` or back
    (``fused_fp8_norms``; the same state, only the branch hooks differ), the blocks' layer norms to stream
    norms or back (``stream_norms`` with ``frozen_dtype``), the adapters' residual to the fused kernel or back (``fused_residual``
    with ``frozen_dtype``, without ``compile_blocks``), the frozen 4-bit layers' forward products to fp8 or
    back (``frozen_fp8``, approximate), compiles the blocks or not
    (``compile_blocks``) and hands the policy to ``backbone.set_memory_policy`` when the
    backbone has one (the ViTs run their blocks through it).

    Returns:
        the number of values cast to ``frozen_dtype``.
    """
    cast = store_frozen_in(backbone, policy.frozen_dtype) if policy.frozen_dtype is not None else 0
    chunked_mlp = policy.frozen_mlp and policy.compile_blocks is False
    # eagerly the fused MLP is FrozenMLP's function (row chunks): not where frozen_mlp=False asks for autograd's
    fused_mlp = policy.fused_fp8_mlp and (chunked_mlp or policy.compile_blocks is not False)
    for module in backbone.modules():
        if isinstance(module, FFN):
            module.__class__ = FrozenFP8MLP if fused_mlp else FrozenMLP if chunked_mlp else FFN
    blocks = [m for m in backbone.modules() if isinstance(m, Block)]
    set_fp8_norm_blocks(blocks, policy.fused_fp8_norms)
    set_stream_norms(blocks, policy.stream_norms and policy.frozen_dtype is not None)
    set_fused_residuals(backbone.modules(), policy.fused_residual and policy.frozen_dtype is not None
                        and policy.compile_blocks is False)
    set_fp8_products(backbone, policy.frozen_fp8)
    log_fusable_norms(blocks)
    compile_blocks(backbone, policy.compile_blocks)
    setter = getattr(backbone, "set_memory_policy", None)
    if setter is not None:
        setter(policy)
    return cast
