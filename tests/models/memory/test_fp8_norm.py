"""``fused_fp8_norms``: frozen layer norms fused with the fp8 row quantization of the frozen product after them.

Error model. The op's reference path (the CPU without Triton's interpreter) is PyTorch's float32 layer norm,
one rounding to bf16, the reference quantizer; its kernel's own deviation (one e4m3 step) is
tests/models/memory/fp8_norm_cases.py's. The composition tests use rows whose norm is exact: ``x = m + s`` with
``s = +-1`` (half the row each), so the mean is ``m`` and the variance 1 up to float32 rounding in any order of
summation (Welford's included), and with ``eps = 0`` the output ``s w + b`` for weights and biases of a few
binary digits, a bf16 value that float32 errors of a few units in the last place cannot move across a bf16
rounding boundary (half a bf16 step, 2^-9 relative, away). The fused product then multiplies exactly the rows
the unfused one does, and its outputs equal the unfused ones bit for bit; the norm's backward, float32 inside,
is checked against the formula in float64 within ``2^-8`` of each value (its rounding to bf16) plus ``C 2^-22``
of the row's largest term. Whole compiled ViT steps: test_fp8_norm_steps.py.
"""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from opentad.models.backbones.wrapper_options import WrapperOptions
from opentad.models.bricks.vit import Block
from opentad.models.memory import fp8_matmul as F8
from opentad.models.memory import fp8_norm as N
from opentad.models.memory.fp8_mlp import fp8_mlp
from opentad.models.memory.fp8_norm_block import FP8NormBlock, set_fp8_norm_blocks
from opentad.models.memory.fp8_rows import rows_product
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from tests.models.memory.kernel_cases import run_cases
from tests.models.memory.tiny_qlora import tiny_qlora_vit

BF16 = torch.bfloat16
CASES = Path(__file__).with_name("fp8_norm_cases.py")
#: the device check, 3 shapes x 8 checks, the eps case's 8, a hand-worked row, a NaN row, the strided case's 5,
#: no rows, float32 rows, 5 refusals
AT_LEAST = 1 + 24 + 8 + 1 + 1 + 5 + 1 + 1 + 5


def test_the_kernel_in_tritons_interpreter_follows_the_eager_norm():
    pytest.importorskip("triton")
    run_cases(CASES, "cpu", interpret=True, at_least=AT_LEAST)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_kernel_on_cuda_follows_the_eager_norm():
    """And (CUDA only) the native casts give the integer arithmetic's codes."""
    run_cases(CASES, "cuda", interpret=False, at_least=AT_LEAST + 1)


def test_the_cuda_kernel_compiles_for_hopper_with_the_gpus_own_instructions():
    """ViT-g's rows (three pieces of 512, one warp), compiled for sm90 without a GPU: the saturating e4m3
    conversion, the NaN-propagating maximum, a correctly rounded square root and divisions (no approximate
    ``div.full``, which Triton's ``/`` compiles to and the interpreter cannot show)."""
    triton = pytest.importorskip("triton")
    pytest.importorskip("triton.backends.nvidia")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from opentad.models.memory.fp8_norm_kernels import layer_norm_rows_kernel

    pointers = {"x_ptr": "*bf16", "w_ptr": "*bf16", "b_ptr": "*bf16", "q_ptr": "*u8", "scale_ptr": "*fp32",
                "mean_ptr": "*fp32", "rstd_ptr": "*fp32"}
    values = {"cols": "i32", "x_stride": "i32", "eps": "fp32", "tiny": "fp32"}
    shape = {"PART": 512, "PARTS": 3, "EVEN": False, "NATIVE": True}
    source = ASTSource(fn=layer_norm_rows_kernel, signature={**pointers, **values, **{k: "constexpr" for k in shape}},
                       constexprs=shape)
    ptx = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 1}).asm["ptx"]
    assert "cvt.rn.satfinite.e4m3x2.f32" in ptx and "max.NaN.f32" in ptx and "sqrt.rn.f32" in ptx
    assert "div.rn.f32" in ptx and "div.full" not in ptx and "div.approx" not in ptx


def test_the_reference_path_is_the_float64_norm_within_bf16_and_e4m3_rounding():
    """Without a kernel: each stored value ``q s`` within e4m3's and bf16's rounding of the float64 norm, the mean
    and ``rstd`` within float32's; the op passes PyTorch's custom-op checks (schema, fake, autograd, dispatch)."""
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(9, 96, generator=gen) * 3 + torch.randn(9, 1, generator=gen) * 10).to(BF16)
    w, b = torch.randn(96, generator=gen).to(BF16), (torch.randn(96, generator=gen) * 0.1).to(BF16)
    q, s, mean, rstd = N.layer_norm_fp8_rows(x, w, b, 1e-6)
    y = F.layer_norm(x.double(), (96,), w.double(), b.double(), 1e-6)
    bound = (2.0**-4 + 2.0**-8) * y.abs() + 2.0**-10 * s.double()
    assert ((q.double() * s.double() - y).abs() <= bound).all()
    assert ((mean.double() - x.double().mean(1, keepdim=True)).abs() <= 96 * 2.0**-24 * x.double().abs().amax()).all()
    rstd64 = 1 / (x.double().var(1, unbiased=False, keepdim=True) + 1e-6).sqrt()
    assert ((rstd.double() - rstd64).abs() <= 104 * 2.0**-24 * rstd64).all()
    if N.CUSTOM_OPS:
        results = torch.library.opcheck(torch.ops.opentad.layer_norm_fp8_rows.default, (x, w, b, 1e-6))
        assert set(results.values()) == {"SUCCESS"}


def _exact_rows(rows: int = 6, cols: int = 64):
    """``(x [rows, cols], a frozen LayerNorm with eps 0, y)``: rows whose norm is exact (module docstring), ``y``
    the norm's output computed by hand (``s w + b``, a bf16 value)."""
    gen = torch.Generator().manual_seed(2)
    sign = torch.tensor([1.0, -1.0]).repeat(cols // 2)[torch.randperm(cols, generator=gen)]
    m = torch.randint(-4, 5, (rows, 1), generator=gen) * 0.5
    norm = nn.LayerNorm(cols, eps=0.0).to(BF16).requires_grad_(False)
    with torch.no_grad():
        norm.weight.copy_(torch.randint(1, 5, (cols,), generator=gen) * 0.5)
        norm.bias.copy_(torch.randint(-2, 3, (cols,), generator=gen) * 0.5)
    x = (m + sign).to(BF16)
    exact = (sign * norm.weight.float() + norm.bias.float()).expand(rows, cols)
    y = exact.to(BF16)
    assert torch.equal(y.float(), exact)  # a bf16 value exactly
    return x, norm, y


def _norm_input_grad64(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The layer norm's input gradient (eps 0) in float64, by its formula: ``rstd (g - mean(g) - xh mean(g xh))``
    with ``g = w dy``, ``xh = (x - mean) rstd``."""
    x64 = x.double()
    rstd = 1 / x64.var(-1, unbiased=False, keepdim=True).sqrt()
    xh = (x64 - x64.mean(-1, keepdim=True)) * rstd
    g = dy.double() * weight.double()
    return rstd * (g - g.mean(-1, keepdim=True) - xh * (g * xh).mean(-1, keepdim=True))


def _assert_norm_grad(got: torch.Tensor, dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> None:
    want = _norm_input_grad64(dy, x, weight)
    bound = 2.0**-8 * want.abs() + x.shape[-1] * 2.0**-22 * (dy.double() * weight.double()).abs().amax(-1, True)
    assert got.dtype == x.dtype and ((got.double() - want).abs() <= bound).all() and want.abs().sum() > 0


def _fp8_layer(k: int, m: int, seed: int, bias: bool = True) -> nn.Module:
    pytest.importorskip("bitsandbytes")
    from tests.models.memory.fp8_layers import frozen_layer

    layer = frozen_layer(k, m, seed=seed, bias=bias)
    F8.set_fp8_products(layer, "all")
    return layer


def test_the_fused_norm_product_is_the_norm_then_the_fp8_product():
    """On rows whose norm is exact: the output is the unfused fp8 product of the norm's output bit for bit, and the
    input gradient is the norm's backward (float64 formula) of the fp8 input gradient; only ``x`` gets one."""
    x, norm, y = _exact_rows()
    qkv = _fp8_layer(64, 192, seed=3, bias=False)
    assert N.fp8_norm_linear(norm, qkv, x) is None  # no fp8 weights made before the step yet
    F8.quantize_fp8_weights(qkv, x.device)
    x = x.requires_grad_()
    out = N.fp8_norm_linear(norm, qkv, x.view(2, 3, 64))
    weight_q, weight_scale, back, back_scale = F8.made_fp8_operands(qkv, x, fp8_backward=True)
    assert out.shape == (2, 3, 192) and torch.equal(out.view(6, 192), rows_product(y, weight_q, weight_scale))
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(4)).to(BF16)
    out.backward(grad)
    dy = F8.input_grad_product(grad.view(6, 192), back, back_scale)
    _assert_norm_grad(x.grad, dy, x.detach(), norm.weight)
    assert norm.weight.grad is None and norm.bias.grad is None


def test_the_fused_norm_product_applies_only_where_it_computes_the_same():
    """None (the caller's unfused path) for a norm that trains, a norm over another width, a subclass of a layer
    norm (it may compute otherwise), a norm or layer with a forward hook (it would be skipped), float32 rows, a
    layer whose backward is not fp8, a bias that trains, a plain linear."""
    x, norm, _ = _exact_rows()
    qkv = _fp8_layer(64, 192, seed=3)
    F8.quantize_fp8_weights(qkv, x.device)
    assert N.fp8_norm_linear(norm, qkv, x) is not None
    assert N.fp8_norm_linear(norm, qkv, x.float()) is None
    assert N.fp8_norm_linear(nn.LayerNorm(32).to(BF16).requires_grad_(False), qkv, x) is None
    assert N.fp8_norm_linear(nn.LayerNorm(64).to(BF16), qkv, x) is None  # trains
    assert N.fp8_norm_linear(norm, nn.Linear(64, 192).to(BF16), x) is None

    class Scaled(nn.LayerNorm):
        pass

    assert N.fp8_norm_linear(Scaled(64).to(BF16).requires_grad_(False), qkv, x) is None
    for module in (norm, qkv):
        hook = module.register_forward_hook(lambda *args: None)
        assert N.fp8_norm_linear(norm, qkv, x) is None
        hook.remove()
    assert N.fp8_norm_linear(norm, qkv, x) is not None
    qkv.bias.requires_grad_(True)
    assert N.fp8_norm_linear(norm, qkv, x) is None
    qkv.bias.requires_grad_(False)
    F8.set_fp8_products(qkv, "forward")
    F8.quantize_fp8_weights(qkv, x.device)
    assert N.fp8_norm_linear(norm, qkv, x) is None


@pytest.mark.parametrize("unused", [False, True])
def test_the_fused_norm_mlp_is_the_norm_then_the_fused_mlp(unused):
    """``fp8_mlp`` with ``norm``: the output is ``fp8_mlp`` of the norm's output bit for bit (left uninitialised
    with ``unused``), the input gradient the norm's backward of that MLP's input gradient."""
    x, norm, y = _exact_rows(cols=64)
    fc1, fc2 = _fp8_layer(64, 128, seed=5), _fp8_layer(128, 64, seed=6)
    y = y.requires_grad_()
    plain = fp8_mlp(fc1, fc2, y, made_only=False)
    grad = torch.randn(plain.shape, generator=torch.Generator().manual_seed(7)).to(BF16)
    plain.backward(grad)
    x = x.requires_grad_()
    fused = fp8_mlp(fc1, fc2, x, made_only=False, unused=unused, norm=norm)
    if not unused:
        assert torch.equal(fused, plain)
    fused.backward(grad)
    _assert_norm_grad(x.grad, y.grad, x.detach(), norm.weight)
    assert fp8_mlp(fc1, fc2, x, made_only=False, norm=nn.LayerNorm(64).to(BF16)) is None  # a norm that trains


def test_the_policy_switches_the_blocks_and_refuses_what_it_cannot_fuse(caplog):
    """``fused_fp8_norms`` makes the blocks :class:`FP8NormBlock` (same state-dict keys) and back, logging how
    many norms it fuses (all 6 of the tiny ViT's 3 blocks; 3 without ``fused_fp8_mlp``; none, a warning, with
    LoRA on ``qkv`` and ``fc1``); it needs ``frozen_fp8="all"`` and ``compile_blocks`` (errors naming the key
    and the value at fault)."""
    model = tiny_qlora_vit()
    keys = list(model.state_dict())
    options = WrapperOptions.from_mapping(dict(frozen_dtype="bf16", frozen_fp8="all", fused_fp8_mlp=True,
                                               fused_fp8_norms=True, compile_blocks=True))
    with caplog.at_level("INFO", logger="opentad.models.memory.fp8_norm_block"):
        apply_memory_policy(model, options.memory_policy(model))
        apply_memory_policy(tiny_qlora_vit(), MemoryPolicy(frozen_dtype=BF16, frozen_fp8="all", fused_fp8_norms=True,
                                                           compile_blocks=True))
        apply_memory_policy(tiny_qlora_vit(backbone_lora_targets=["qkv", "fc1"]),
                            MemoryPolicy(frozen_dtype=BF16, frozen_fp8="all", fused_fp8_mlp=True,
                                         fused_fp8_norms=True, compile_blocks=True))
    messages = [(r.levelname, r.getMessage()) for r in caplog.records
                if r.name == "opentad.models.memory.fp8_norm_block"]
    fused = "fused_fp8_norms: {} of the 6 layer norms of 3 blocks fused with their product's fp8 rows"
    assert messages[:2] == [("INFO", fused.format(6)), ("INFO", fused.format(3))]
    assert messages[2][0] == "WARNING" and "none of the 3 blocks' layer norms can be fused" in messages[2][1]
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    assert blocks and all(type(m) is FP8NormBlock for m in blocks) and list(model.state_dict()) == keys
    apply_memory_policy(model, MemoryPolicy(frozen_dtype=BF16, frozen_fp8="all"))
    assert all(type(m) is Block for m in blocks)
    with pytest.raises(ValueError, match="fused_fp8_norms=True .* needs frozen_fp8='all', got frozen_fp8=True"):
        MemoryPolicy(frozen_dtype=BF16, frozen_fp8=True, fused_fp8_norms=True, compile_blocks=True)
    with pytest.raises(ValueError, match="fused_fp8_norms=True .* needs compile_blocks .* got compile_blocks=False"):
        MemoryPolicy(frozen_dtype=BF16, frozen_fp8="all", fused_fp8_norms=True)

    class Other(Block):
        pass

    other = Other(embed_dims=16, num_heads=2)
    assert set_fp8_norm_blocks([other, Block(embed_dims=16, num_heads=2)], True) == 1 and type(other) is Other


def test_eager_blocks_compute_as_plain_blocks():
    """Outside compiled code an :class:`FP8NormBlock` is the plain block: the same output bit for bit."""
    block = Block(embed_dims=32, num_heads=2).eval()
    x = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(8))
    want = block(x, (1, 5))
    set_fp8_norm_blocks([block], True)
    assert type(block) is FP8NormBlock and torch.equal(block(x, (1, 5)), want)
