"""Dequantization of bitsandbytes 4-bit weights that is right on every CPU.

bitsandbytes 0.50's CPU kernel (``dequantizeBlockwise4bitCpu``) takes an
AVX-512 path when the CPU has AVX-512F and the last dimension is a multiple
of 16; that path scales every row by the absmax of the blocks of the row's
own start, which is wrong when blocks straddle rows (last dimension not a
multiple of the block size): a ``[64, 16]`` weight with 64-element blocks
came back with a relative error of 0.37 instead of NF4's 0.09, a ViT-S
adapter up-projection ``[384, 96]`` with 0.25. CPUs without AVX-512 take a
scalar path that is right, so results depended on the machine.

On CPU, :func:`dequantize_4bit` therefore computes the weight itself, as the
format defines it: element ``i`` is ``code[nibble_i] * absmax[i // blocksize]``
(high nibble first), with the block scales themselves dequantized first when
they are double-quantized. Other devices use bitsandbytes' kernels.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .bnb import import_bitsandbytes

__all__ = ["dequantize_4bit"]


def _block_scales(state) -> Tensor:
    """float32 absmax per block, dequantizing nested (double-quantized) scales."""
    if not state.nested:
        return state.absmax.float()
    nested = state.state2
    codes = nested.code.float()[state.absmax.reshape(-1).long()]
    count = codes.numel()
    scales = nested.absmax.float().repeat_interleave(nested.blocksize)[:count]
    return codes * scales + float(state.offset)


def dequantize_4bit(packed: Tensor, state) -> Tensor:
    """The weight ``state.shape`` in ``state.dtype`` that a 4-bit ``packed`` tensor stores.

    Args:
        packed: the packed bytes (``Params4bit.data``), two 4-bit codes per byte.
        state: its bitsandbytes ``QuantState`` (``code``, ``absmax``, ``blocksize``,
            ``shape``, ``dtype``, ``nested``/``state2``/``offset``).

    Returns:
        The dequantized weight; on CPU computed here, elsewhere by bitsandbytes.
    """
    if packed.device.type != "cpu":
        return import_bitsandbytes().functional.dequantize_4bit(packed, state)
    count = math.prod(state.shape)
    data = packed.reshape(-1).view(torch.uint8)
    nibbles = torch.stack((data >> 4, data & 0x0F), dim=1).reshape(-1)[:count]
    values = state.code.float()[nibbles.long()]
    scales = _block_scales(state).repeat_interleave(state.blocksize)[:count]
    return (values * scales).reshape(state.shape).to(state.dtype)
