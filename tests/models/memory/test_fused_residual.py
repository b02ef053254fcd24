"""The adapters' fused scaled residual: bitwise the eager expression cast to bf16, installed by the policy.

The kernel checks live in ``fused_residual_cases.py`` (independent float64 references, hand-worked ties,
infinities, NaN and subnormals, random bit patterns, a strided incoming gradient, guard elements, an adapter
and whole backbone wrappers under autocast against the eager expression) and run in a fresh process:
Triton's CPU interpreter is chosen when Triton is first imported (``TRITON_INTERPRET=1``), and on CUDA
without it.
"""
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from opentad.models.bricks.vit_adapter import PlainAdapter, TemporalAdapter, scaled_residual
from opentad.models.memory import fused_residual
from opentad.models.memory.fused_residual import fused_scaled_residual, fusable, set_fused_residuals
from tests.models.memory.kernel_cases import run_cases

CASES = Path(__file__).with_name("fused_residual_cases.py")
BF16 = torch.bfloat16


def _run_cases(device: str, interpret: bool) -> str:
    return run_cases(CASES, device, interpret, at_least=70)


def test_the_kernels_in_tritons_interpreter_match_the_independent_references():
    pytest.importorskip("triton")
    _run_cases("cpu", interpret=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the compiled kernels need a CUDA device")
def test_the_kernels_on_cuda_match_the_independent_references():
    pytest.importorskip("triton")
    _run_cases("cuda", interpret=False)


@pytest.mark.parametrize("why", ["cpu tensors without the interpreter", "no triton", "float32"])
def test_otherwise_it_is_the_eager_expression(monkeypatch, why):
    if why == "no triton":
        monkeypatch.setattr(fused_residual, "_kernels", lambda: None)
    dtype = torch.float32 if why == "float32" else BF16
    gen = torch.Generator().manual_seed(0)
    up, x = (torch.randn(2, 3, 8, generator=gen).to(dtype).requires_grad_(True) for _ in range(2))
    gamma = torch.tensor([0.7], requires_grad=True)
    if os.environ.get("TRITON_INTERPRET") != "1":
        assert not fusable(up, gamma, x)
    out = fused_scaled_residual(up, gamma, x)
    assert out.dtype == torch.float32  # promoted by gamma, as upstream's adapter
    expected = up.detach().float() * gamma.detach() + x.detach().float()  # float32 product, then float32 sum
    assert torch.equal(out.detach(), expected)
    out.sum().backward()
    terms = up.detach().double()  # gamma's gradient: a float32 sum of 48 values, within 48 * eps32 * sum |terms|
    assert abs(gamma.grad.item() - terms.sum().item()) <= 48 * 2.0**-23 * terms.abs().sum().item()
    assert torch.equal(x.grad, torch.ones_like(x)) and torch.equal(up.grad, torch.full_like(up, 0.7))


def test_the_adapter_computes_its_residual_through_residual_op():
    adapter = TemporalAdapter(embed_dims=8, mlp_ratio=0.5, temporal_size=2)
    seen = []

    def spy(up, gamma, x):
        seen.append((tuple(up.shape), gamma is adapter.gamma, tuple(x.shape)))
        return scaled_residual(up, gamma, x)

    adapter.residual_op = spy
    x = torch.randn(2, 4, 8)
    out = adapter(x, (2, 1))
    assert seen == [((2, 4, 8), True, (2, 4, 8))]
    del adapter.residual_op
    assert torch.equal(adapter(x, (2, 1)), out)  # zero up_proj: x itself


def test_set_fused_residuals_touches_residual_adapters_only_and_keeps_the_state():
    with_residual = TemporalAdapter(embed_dims=8, mlp_ratio=0.5, temporal_size=2)
    plain = PlainAdapter(embed_dims=8, residual=False)
    keys = list(with_residual.state_dict())
    assert set_fused_residuals([with_residual, plain, nn.Linear(2, 2)], True) == 1
    assert with_residual.residual_op is fused_scaled_residual and plain.residual_op is scaled_residual
    assert list(with_residual.state_dict()) == keys
    assert set_fused_residuals([with_residual, plain], False) == 0
    assert with_residual.residual_op is scaled_residual and "residual_op" not in vars(with_residual)


def test_the_memory_policy_installs_it_with_frozen_dtype_only():
    from opentad.models.backbones.backbone_wrapper import WrapperOptions
    from opentad.models.bricks.vit import Block
    from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy

    block = Block(embed_dims=8, num_heads=2, adapter=TemporalAdapter(embed_dims=8, mlp_ratio=0.5, temporal_size=2))
    blocks = nn.Sequential(block)

    def installed():
        return block.adapter.residual_op is fused_scaled_residual

    apply_memory_policy(blocks, MemoryPolicy(frozen_dtype=BF16, fused_residual=True))
    assert installed()
    apply_memory_policy(blocks, MemoryPolicy(frozen_dtype=BF16))  # off by default until measured on a GPU
    assert not installed()
    apply_memory_policy(blocks, MemoryPolicy(frozen_dtype=BF16, fused_residual=True))
    apply_memory_policy(blocks, MemoryPolicy(fused_residual=True))  # float32 as upstream: the eager expression
    assert not installed()
    apply_memory_policy(blocks, MemoryPolicy(frozen_dtype=BF16, fused_residual=True))
    apply_memory_policy(blocks, MemoryPolicy(frozen_dtype=BF16, fused_residual=True, compile_blocks=True))
    assert not installed()  # the compiler fuses the expression itself
    assert WrapperOptions.from_mapping(dict(fused_residual=True)).memory_policy(nn.Module()).fused_residual is True
    assert WrapperOptions.from_mapping({}).memory_policy(nn.Module()).fused_residual is False
