"""Frozen 4-bit layers and spread-out inputs for the fp8 product tests (``test_fp8_matmul.py``,
``test_fp8_policy.py``)."""
import torch
from torch import nn

from opentad.models.bricks.quant import QuantSpec, quantize_linear

BF16 = torch.bfloat16


def frozen_layer(k: int, m: int, seed: int = 0, bias: bool = True) -> nn.Module:
    """A frozen NF4 ``[m, k]`` layer computing in bf16, with a random (not zero) bias."""
    torch.manual_seed(seed)
    layer = quantize_linear(nn.Linear(k, m, bias=bias), QuantSpec(compute_dtype=BF16))
    with torch.no_grad():
        if bias:
            layer.bias.normal_()
    return layer


def spread_inputs(rows: int, k: int, seed: int = 1) -> torch.Tensor:
    """``[rows, k]`` bf16 whose columns' magnitudes spread over six decades (rows reach e4m3's subnormals)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, k, generator=gen) * torch.logspace(-3, 3, k)[torch.randperm(k, generator=gen)]).to(BF16)
