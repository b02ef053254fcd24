"""Quantized linears and the LoRA wrapper, on CPU bitsandbytes kernels."""
import pytest
import torch
from torch import nn

from opentad.models.bricks.lora import LoRALinear
from opentad.models.bricks.quant import QuantSpec, dequantize_weight, is_quantized, quantize_linear
from opentad.models.bricks.quant_io import export_quantized, import_quantized


def _linear(seed, in_f=64, out_f=32, bias=True):
    torch.manual_seed(seed)
    return nn.Linear(in_f, out_f, bias=bias)


@pytest.mark.parametrize("bits", [4, 8])
def test_quantized_layer_equals_its_dequantized_weight(bits):
    lin = _linear(0)
    q = quantize_linear(lin, QuantSpec(bits=bits))
    assert is_quantized(q) and not q.weight.requires_grad
    x = torch.randn(7, 64)
    reference = x @ dequantize_weight(q).T + lin.bias
    torch.testing.assert_close(q(x), reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bits,tol", [(4, 0.16), (8, 0.02)])
def test_quantization_error_is_bounded_relative_to_weight_scale(bits, tol):
    """Stated quantization tolerances, relative to the largest weight.

    NF4: half the widest gap between NF4 levels (0.723 -> 1.0) is 0.139 of the
    block's absmax; bitsandbytes' CPU kernel reaches 0.152 (measured), so 0.16.
    int8 (row-wise absmax): half a step is 1/254 of the row's absmax, < 0.02.
    """
    lin = _linear(1, 256, 128)
    q = quantize_linear(lin, QuantSpec(bits=bits))
    err = (dequantize_weight(q) - lin.weight).abs().max() / lin.weight.abs().max()
    assert err < tol


def test_nf4_is_set_explicitly_and_differs_from_fp4():
    lin = _linear(2)
    nf4 = quantize_linear(lin, QuantSpec(bits=4, quant_type="nf4"))
    fp4 = quantize_linear(lin, QuantSpec(bits=4, quant_type="fp4"))
    assert nf4.weight.quant_state.quant_type == "nf4"
    assert not torch.equal(dequantize_weight(nf4), dequantize_weight(fp4))


@pytest.mark.parametrize("bits", [4, 8])
def test_zero_weights_survive_quantization_without_nan(bits):
    lin = _linear(3, bias=False)
    nn.init.zeros_(lin.weight)
    q = quantize_linear(lin, QuantSpec(bits=bits))
    assert torch.equal(dequantize_weight(q), torch.zeros(32, 64))
    out = q(torch.randn(5, 64))
    assert torch.equal(out, torch.zeros(5, 32))


@pytest.mark.parametrize("bits", [4, 8])
def test_export_import_round_trip_is_bit_exact(bits, tmp_path):
    q = quantize_linear(_linear(4), QuantSpec(bits=bits))
    x = torch.randn(3, 64)
    expected = q(x)
    path = tmp_path / "q.pt"
    torch.save(export_quantized(q), path)
    fresh = quantize_linear(_linear(5), QuantSpec(bits=bits))  # other weights
    fresh.bias = q.bias
    import_quantized(fresh, torch.load(path, weights_only=True))
    assert torch.equal(fresh.weight.data, q.weight.data)
    assert torch.equal(fresh(x), expected)


def test_a_held_dequantized_copy_follows_imported_weights():
    """The memory planner's ``hold`` keeps a dequantized copy on the layer, which its forward multiplies with:
    weights imported afterwards (a checkpoint loaded after the first step) must replace it, not hide behind it."""
    from opentad.models.memory.dequant_cache import hold_dequantized

    source = quantize_linear(_linear(8), QuantSpec(bits=4, compute_dtype=torch.bfloat16))
    target = quantize_linear(_linear(9), QuantSpec(bits=4, compute_dtype=torch.bfloat16))
    target.bias = source.bias
    x = torch.randn(5, 64, dtype=torch.bfloat16)
    assert hold_dequantized(target, True, torch.bfloat16) > 0
    import_quantized(target, export_quantized(source))
    assert target.held_weight.dtype == torch.bfloat16
    assert torch.equal(target.held_weight, dequantize_weight(source).to(torch.bfloat16))
    assert torch.equal(target(x), source(x))
    unheld = quantize_linear(_linear(9), QuantSpec(bits=4, compute_dtype=torch.bfloat16))
    import_quantized(unheld, export_quantized(source))
    assert unheld.held_weight is None  # nothing held before: nothing made


def test_import_rejects_wrong_shape():
    q = quantize_linear(_linear(6), QuantSpec(bits=8))
    other = quantize_linear(_linear(6, 32, 16), QuantSpec(bits=8))
    with pytest.raises(ValueError, match="does not fit"):
        import_quantized(other, export_quantized(q))


def test_bad_spec_names_value():
    with pytest.raises(ValueError, match="3"):
        QuantSpec(bits=3)


@pytest.mark.parametrize("bits", [None, 4, 8])
def test_lora_starts_as_base_and_only_lora_trains(bits):
    base = _linear(7)
    if bits is not None:
        base = quantize_linear(base, QuantSpec(bits=bits))
    layer = LoRALinear(base, r=4, alpha=8, dropout=0.0)
    x = torch.randn(6, 64, requires_grad=True)
    torch.testing.assert_close(layer(x), base(x), atol=0, rtol=0)
    layer(x).square().sum().backward()
    # lora_b gets a gradient (lora_a is random), lora_a none yet (lora_b is zero)
    assert layer.lora_b.weight.grad is not None and layer.lora_b.weight.grad.abs().sum() > 0
    assert layer.lora_a.weight.grad is not None and layer.lora_a.weight.grad.abs().sum() == 0
    trainable = {n for n, p in layer.named_parameters() if p.requires_grad}
    assert trainable == {"lora_a.weight", "lora_b.weight"}
    assert {n for n, _ in layer.trainable_parameters()} == trainable


@pytest.mark.parametrize("bits", [None, 4, 8])
def test_lora_update_and_merge_match_hand_formula(bits):
    float_base = _linear(8)
    base = float_base if bits is None else quantize_linear(float_base, QuantSpec(bits=bits))
    layer = LoRALinear(base, r=3, alpha=6, dropout=0.1).eval()
    with torch.no_grad():
        layer.lora_b.weight.normal_()
    x = torch.randn(5, 64)
    w = layer.base_weight()
    a, b = layer.lora_a.weight, layer.lora_b.weight
    expected = x @ w.T + base.bias + 2.0 * (x @ a.T @ b.T)  # alpha / r = 2
    torch.testing.assert_close(layer(x), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(layer.merged_linear()(x), expected, atol=1e-4, rtol=1e-4)


def test_lora_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(_linear(9), r=0, alpha=1)


def _saved_count(fn):
    """How many tensors autograd saves while ``fn`` runs."""
    count = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: count.append(t) or t, lambda t: t):
        out = fn()
    return out, len(count)


def test_4bit_layer_saves_no_activation_and_backward_uses_the_dequantized_weight():
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    layer = quantize_linear(linear, QuantSpec(bits=4))
    x = torch.randn(5, 7, 64, requires_grad=True)
    out, saved = _saved_count(lambda: layer(x))
    assert saved == 0  # bitsandbytes' own Linear4bit keeps its input here
    grad = torch.randn_like(out)
    out.backward(grad)
    weight = dequantize_weight(layer)
    torch.testing.assert_close(x.grad, grad @ weight, rtol=1e-5, atol=1e-5)
    assert layer.weight.grad is None and not layer.weight.requires_grad
    before = layer.bias.dtype, layer.weight.data.clone()
    layer.eval()
    with torch.no_grad():
        layer(x.detach().to(torch.bfloat16))
    assert (layer.bias.dtype, True) == (before[0], torch.equal(layer.weight.data, before[1]))  # forward changes nothing


def test_4bit_layer_under_autocast_computes_and_returns_the_autocast_dtype():
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    layer = quantize_linear(linear, QuantSpec(bits=4))
    x = torch.randn(4, 64)  # float32, as a LayerNorm's output under autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    reference = x.bfloat16().float() @ dequantize_weight(layer).bfloat16().float().T + linear.bias.bfloat16().float()
    torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.02)
