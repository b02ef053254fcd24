"""The chunked MLP of frozen blocks equals autograd's MLP (outputs, input gradients) and keeps less."""
import threading

import pytest
import torch

from opentad.models.bricks.lora import LoRALinear
from opentad.models.bricks.quant import QuantSpec, quantize_linear
from opentad.models.bricks.vit import FFN
from opentad.models.memory import frozen_mlp
from opentad.models.memory.frozen_mlp import FrozenMLP


def _ffn(kind, dims=24, hidden=96, seed=0):
    torch.manual_seed(seed)
    ffn = FFN(embed_dims=dims, hidden_dims=hidden)
    if kind in ("nf4", "int8"):
        spec = QuantSpec(bits=4 if kind == "nf4" else 8)
        ffn.layers[0][0] = quantize_linear(ffn.layers[0][0], spec)
        ffn.layers[1] = quantize_linear(ffn.layers[1], spec)
    ffn.requires_grad_(False)
    return ffn


def _run(ffn, x, chunked, autocast=False):
    ffn.__class__ = FrozenMLP if chunked else FFN  # as the memory policy switches it
    x = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y = ffn(x)
    grad = torch.linspace(-1, 1, y.numel()).view_as(y).to(y.dtype)
    y.backward(grad)
    return y.detach(), x.grad


@pytest.mark.parametrize("kind", ["float", "nf4", "int8"])
@pytest.mark.parametrize("autocast", [False, True])
def test_chunked_equals_autograd(kind, autocast, monkeypatch):
    monkeypatch.setattr(frozen_mlp, "CHUNK_BYTES", 96 * 4 * 7)  # chunks of 7 rows (float32 hidden), ragged end
    ffn = _ffn(kind)
    x = torch.randn(3, 17, 24)
    calls = []
    original = frozen_mlp.FrozenMLPFunction.forward
    monkeypatch.setattr(frozen_mlp.FrozenMLPFunction, "forward",
                        staticmethod(lambda ctx, *a: calls.append(1) or original(ctx, *a)))
    y_ref, g_ref = _run(ffn, x, chunked=False, autocast=autocast)
    y, g = _run(ffn, x, chunked=True, autocast=autocast)
    assert calls, "the chunked path was not taken"
    assert y.dtype == y_ref.dtype and g.dtype == g_ref.dtype == torch.float32
    tol = dict(atol=2e-2, rtol=2e-2) if autocast else dict(atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y, y_ref, **tol)
    torch.testing.assert_close(g, g_ref, **tol)
    assert all(p.grad is None for p in ffn.parameters())


def test_chunked_path_keeps_only_the_hidden_pre_activation():
    ffn = _ffn("float")
    x = torch.randn(2, 10, 24, requires_grad=True)
    for chunked, expected in ((False, None), (True, 2 * 10 * 96 * 4)):
        saved = []
        ffn.__class__ = FrozenMLP if chunked else FFN  # as the memory policy switches it
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            ffn(x)
        sizes = sum(t.numel() * t.element_size() for t in saved)
        if expected is not None:
            assert sizes == expected
        else:
            assert sizes >= 2 * 10 * 96 * 4  # autograd keeps at least fc1's output as well


def test_not_taken_when_something_trains_or_no_grad_is_needed(monkeypatch):
    calls = []
    monkeypatch.setattr(frozen_mlp.FrozenMLPFunction, "apply", lambda *a: calls.append(1))
    x = torch.randn(2, 5, 24, requires_grad=True)
    trainable = FFN(embed_dims=24, hidden_dims=96)  # full fine-tuning: weights need gradients
    lora = _ffn("nf4")
    lora.layers[1] = LoRALinear(lora.layers[1], r=2, alpha=4, dropout=0.0)
    frozen = _ffn("float")
    for ffn in (trainable, lora, frozen):
        ffn.__class__ = FrozenMLP  # as the memory policy switches it
    trainable(x)
    lora(x)
    frozen(x.detach())  # no gradient wanted at all
    assert calls == []
    frozen(x)
    assert calls == [1]


def test_chunk_rows():
    assert frozen_mlp.chunk_rows(100, 10, 4) == 100  # 4 KB: one chunk
    monkeypatch_bytes = frozen_mlp.CHUNK_BYTES
    rows = frozen_mlp.chunk_rows(10_000, 4096, 2)  # 80 MB -> 2 chunks
    assert rows == 5000 and 10_000 * 4096 * 2 > monkeypatch_bytes


@pytest.mark.parametrize("kind", ["float", "nf4"])
def test_output_unused_skips_the_second_product_and_keeps_the_input_gradient(kind, monkeypatch):
    """Inside ``output_unused`` only ``fc1`` runs; backward gives the input gradient of the full forward."""
    monkeypatch.setattr(frozen_mlp, "CHUNK_BYTES", 96 * 4 * 7)  # several chunks of rows
    ffn = _ffn(kind)
    ffn.__class__ = FrozenMLP
    fc2_calls = []
    ffn.layers[1].register_forward_hook(lambda *a: fc2_calls.append(1))
    x = torch.randn(3, 17, 24)
    grad = torch.linspace(-1, 1, x.numel()).view_as(x)
    ref_x = x.clone().requires_grad_(True)
    y_ref = ffn(ref_x)
    y_ref.backward(grad)
    calls_full = len(fc2_calls)
    got_x = x.clone().requires_grad_(True)
    with frozen_mlp.output_unused():
        y = ffn(got_x)
    assert not getattr(frozen_mlp._STATE, "output_unused", False)  # restored on exit
    assert calls_full > 1 and len(fc2_calls) == calls_full  # no fc2 call inside the context
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype
    y.backward(grad)
    # the same fc1 products on the same rows, the same backward ops: the same input gradient, bit for bit
    assert torch.equal(got_x.grad, ref_x.grad)


def test_output_unused_is_per_thread_and_nests():
    seen = []
    with frozen_mlp.output_unused():
        with frozen_mlp.output_unused():
            pass
        seen.append(frozen_mlp._STATE.output_unused)  # still on after the inner context closed
        thread = threading.Thread(target=lambda: seen.append(getattr(frozen_mlp._STATE, "output_unused", False)))
        thread.start()
        thread.join()
    seen.append(frozen_mlp._STATE.output_unused)
    assert seen == [True, False, False]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_input_gradient_is_fp8_exactly_where_the_layers_own_backward_is(dtype):
    """Frozen 4-bit fc1/fc2 computing in bf16 with fp8 "all" products, called on float32 (no autocast: the layers
    multiply in their compute dtype) or bf16 inputs: FrozenMLP's input gradient takes each layer's own backward
    arithmetic, the fp8 product (it took a float32 product for float32 inputs before). Error model: the same fp8
    products in the same order, so within a tenth of what fp8 changes (the gradient with fp8 products off)."""
    pytest.importorskip("bitsandbytes")
    from opentad.models.memory import fp8_matmul as F8
    from tests.models.memory.fp8_layers import frozen_layer

    def grad_of(cls, mode):
        ffn = FFN(embed_dims=64, hidden_dims=256)
        ffn.layers[0][0], ffn.layers[1] = frozen_layer(64, 256, seed=1), frozen_layer(256, 64, seed=2)
        ffn.requires_grad_(False)
        F8.set_fp8_products(ffn, mode)
        ffn.__class__ = cls
        x = torch.randn(32, 64, generator=torch.Generator().manual_seed(3)).to(dtype).requires_grad_(True)
        y = ffn(x)
        return torch.autograd.grad(y, x, torch.randn(32, 64, generator=torch.Generator().manual_seed(4)).to(y.dtype))[
            0].float()

    own, chunked, bf16 = grad_of(FFN, "all"), grad_of(FrozenMLP, "all"), grad_of(FFN, False)
    assert float((chunked - own).norm()) <= 0.1 * float((bf16 - own).norm())
