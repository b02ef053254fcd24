"""Stream layer norms: under autocast they keep the stream's dtype and round once, otherwise they are LayerNorm.

Error model: the norm of ``C = 64`` values computed in float32 and rounded once to bf16 differs from the float64
norm of the same bf16 inputs by at most half a bf16 unit in the last place (``2^-8`` of the value, bf16 keeping 8
significant bits) plus the float32 error of the mean, variance and affine steps, each a sum of at most ``C`` terms:
``C * 4 * eps32`` times the size of the terms (``|w| * |x_hat| + |b|``). The backward's input gradient
``rstd * (w g - mean(w g) - x_hat mean(w g x_hat))`` likewise: ``C * 8 * eps32`` times ``rstd * 3 max|w g|`` plus,
on CUDA, half a bf16 unit of the value (float32 inside, one rounding). PyTorch's CPU kernel for bf16 also rounds
its terms to bf16 inside (it exceeds the one-rounding bound where they cancel), so the CPU check adds half a bf16
unit of the terms, ``2^-8 * rstd * 3 max|w g|``. A norm run at bf16 throughout (no float32 inside) would miss these bounds by far: its
variance alone carries a relative error near ``2^-8``.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from opentad.models.memory import stream_norm
from opentad.models.memory.stream_norm import StreamLayerNorm, set_stream_norms

C = 64
EPS32 = torch.finfo(torch.float32).eps
BF16 = torch.bfloat16


def _norm(dtype=BF16):
    torch.manual_seed(0)
    norm = StreamLayerNorm(C, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.5 * torch.randn(C))
        norm.bias.copy_(0.3 * torch.randn(C))
    return norm.to(dtype)


def _input(device="cpu"):
    x = torch.randn(3, 5, C, generator=torch.Generator().manual_seed(1)) * 4 + 7  # an offset: cancellation
    return x.to(device=device, dtype=BF16)


def _reference(norm, x, grad, rounded_terms=False):
    """float64 norm of the same bf16 values, its input gradient for ``grad``, and the tolerance terms."""
    x64 = x.double().detach().requires_grad_(True)
    w, b = norm.weight.double(), norm.bias.double()
    y = F.layer_norm(x64, (C,), w, b, norm.eps)
    y.backward(grad.double())
    x_hat = (x64 - x64.mean(-1, keepdim=True)) / (x64.var(-1, unbiased=False, keepdim=True) + norm.eps).sqrt()
    rstd = 1 / (x64.var(-1, unbiased=False, keepdim=True) + norm.eps).sqrt()
    forward_tol = 2.0**-8 * y.abs() + C * 4 * EPS32 * (w.abs() * x_hat.abs() + b.abs())
    wg = (w * grad.double()).abs().amax(-1, keepdim=True)
    backward_tol = 2.0**-8 * x64.grad.abs() + (C * 8 * EPS32 + 2.0**-8 * rounded_terms) * rstd * 3 * wg
    return y.detach(), x64.grad, forward_tol.detach(), backward_tol.detach()


def test_under_autocast_it_keeps_the_stream_dtype_within_the_rounding_bounds(monkeypatch):
    norm = _norm()
    x = _input().requires_grad_(True)
    grad = torch.randn(3, 5, C, generator=torch.Generator().manual_seed(2)).to(BF16)
    seen, real = [], F.layer_norm

    def spy(*args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), args[0].dtype))
        return real(*args, **kwargs)

    monkeypatch.setattr(stream_norm.F, "layer_norm", spy)
    with torch.autocast("cpu", dtype=BF16):
        y = norm(x)
    y.backward(grad)
    assert seen == [(False, BF16)] and y.dtype == BF16 and x.grad.dtype == BF16
    ref_y, ref_grad, forward_tol, backward_tol = _reference(norm, x, grad, rounded_terms=True)
    assert bool(((y.double() - ref_y).abs() <= forward_tol).all())
    assert bool(((x.grad.double() - ref_grad).abs() <= backward_tol).all())


@pytest.mark.parametrize("case", ["no autocast", "float32 weights", "another autocast dtype"])
def test_otherwise_it_is_the_plain_layer_norm(case):
    norm = _norm(torch.float32 if case == "float32 weights" else BF16)
    plain = nn.LayerNorm(C, eps=1e-6).to(norm.weight.dtype)
    plain.load_state_dict(norm.state_dict())
    x = _input()
    dtype = torch.float16 if case == "another autocast dtype" else BF16
    with torch.autocast("cpu", dtype=dtype, enabled=case != "no autocast"):
        assert torch.equal(norm(x), plain(x))


def test_set_stream_norms_swaps_the_block_norms_that_a_linear_layer_reads_and_keeps_the_state():
    """norm1 feeds ``attn.qkv``, norm2 ``mlp.layers[0][0]``: a plain linear layer rounds the norm's float32 output
    to bf16 at once, a LoRA layer also feeds it, unrounded under autocast, to its dropout and branch (so its norm
    stays a LayerNorm); a norm read by a layer not known here, or of another class, is left as it is."""
    from opentad.models.bricks.lora import LoRALinear

    class Attn(nn.Module):
        def __init__(self, qkv):
            super().__init__()
            self.qkv = qkv

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(nn.Sequential(nn.Linear(C, 2 * C), nn.GELU()), nn.Linear(2 * C, C))

    class Block(nn.Module):
        def __init__(self, qkv, mlp=True):
            super().__init__()
            self.norm1, self.norm2, self.norm3 = nn.LayerNorm(C), nn.LayerNorm(C), nn.LayerNorm(C)
            self.attn = Attn(qkv)
            if mlp:
                self.mlp = Mlp()

    class Other(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.attn = nn.GroupNorm(4, C), Attn(nn.Linear(C, 3 * C))

    blocks = [Block(nn.Linear(C, 3 * C)), Block(LoRALinear(nn.Linear(C, 3 * C), r=2, alpha=4, dropout=0.1)),
              Block(nn.Linear(C, 3 * C), mlp=False), Other()]
    keys = [sorted(b.state_dict()) for b in blocks]
    assert set_stream_norms(blocks, True) == 4
    kinds = [[type(getattr(b, n)) for n in ("norm1", "norm2", "norm3")] for b in blocks[:3]]
    assert kinds == [[StreamLayerNorm, StreamLayerNorm, nn.LayerNorm],
                     [nn.LayerNorm, StreamLayerNorm, nn.LayerNorm],
                     [StreamLayerNorm, nn.LayerNorm, nn.LayerNorm]]
    assert type(blocks[3].norm1) is nn.GroupNorm
    assert [sorted(b.state_dict()) for b in blocks] == keys
    assert set_stream_norms(blocks, False) == 0
    assert all(type(getattr(b, n)) is nn.LayerNorm for b in blocks[:3] for n in ("norm1", "norm2", "norm3"))


def test_the_memory_policy_sets_them_with_frozen_dtype_only():
    from opentad.models.backbones.backbone_wrapper import WrapperOptions
    from opentad.models.bricks.vit import Block
    from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy

    blocks = nn.Sequential(Block(embed_dims=C, num_heads=2), Block(embed_dims=C, num_heads=2))

    def kinds():
        return {type(m) for b in blocks for m in (b.norm1, b.norm2)}

    apply_memory_policy(blocks, MemoryPolicy(frozen_dtype=BF16))
    assert kinds() == {StreamLayerNorm}
    apply_memory_policy(blocks, MemoryPolicy(frozen_dtype=BF16, stream_norms=False))
    assert kinds() == {nn.LayerNorm}
    apply_memory_policy(blocks, MemoryPolicy(frozen_dtype=BF16))
    apply_memory_policy(blocks, MemoryPolicy())  # float32 as upstream: autocast's own norms
    assert kinds() == {nn.LayerNorm}
    assert WrapperOptions.from_mapping(dict(stream_norms=False)).memory_policy(nn.Module()).stream_norms is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA autocast runs layer_norm in float32")
def test_on_cuda_it_rounds_autocasts_float32_result():
    """CUDA autocast's norm returns float32, which the next linear layer rounds to bf16; the stream norm rounds
    the same float32 computation once (same kernel, float32 inside): equal up to that computation's order."""
    norm = _norm().cuda()
    plain = nn.LayerNorm(C, eps=1e-6).to(device="cuda", dtype=BF16)
    plain.load_state_dict(norm.state_dict())
    x, x2 = _input("cuda").requires_grad_(True), _input("cuda").requires_grad_(True)
    grad = torch.randn(3, 5, C, generator=torch.Generator().manual_seed(2)).to(device="cuda", dtype=BF16)
    with torch.autocast("cuda", dtype=BF16):
        ours, theirs = norm(x), plain(x2)
    assert ours.dtype == BF16 and theirs.dtype == torch.float32
    ours.backward(grad)
    theirs.backward(grad.float())
    for got, want in ((ours, theirs.detach().to(BF16)), (x.grad, x2.grad)):  # x2's gradient: rounded to bf16
        ulp = 2.0**-7 * want.float().abs().clamp_min(2.0**-126)
        assert bool(((got.float() - want.float()).abs() <= ulp).all())
    ref_y, ref_grad, forward_tol, backward_tol = _reference(norm, x, grad)
    assert bool(((ours.double() - ref_y).abs() <= forward_tol).all())
    assert bool(((x.grad.double() - ref_grad).abs() <= backward_tol).all())
