"""Dequantized 4-bit weights reused within the chunked backward: counted per layer against a hand count,
and the gradients are those without the cache (bit for bit) and of ordinary checkpointing."""
import collections
import contextlib
import dataclasses
import threading

import pytest
import torch

from opentad.models.bricks import quant, quant_weights
from opentad.models.memory import chunked_residual
from opentad.models.memory.chunked_residual import chunk_bounds
from opentad.models.memory.dequant_cache import cached_weights, dequantized, reuse_dequantized
from opentad.models.memory.policy import apply_memory_policy

bnb = pytest.importorskip("bitsandbytes")

TINY = dict(
    img_size=32, patch_size=16, embed_dims=64, depth=2, num_heads=2, mlp_ratio=2.0, num_frames=4,
    total_frames=8, adapter_index=[0, 1], return_feat_map=True, with_cp=True,
    lora_r=4, lora_alpha=8, lora_dropout=0.0, quantize_backbone=True, backbone_lora_targets=[],
)
FROZEN = ("attn.qkv", "attn.proj", "mlp.layers.0.0", "mlp.layers.1")


def test_dequantized_once_per_storage_and_dtype_inside_the_context():
    packed = torch.arange(6, dtype=torch.uint8)
    calls = []

    def fn():
        calls.append(1)
        return packed.float() * 2

    assert torch.equal(dequantized(packed, torch.float32, fn), packed.float() * 2)
    dequantized(packed, torch.float32, fn)
    assert len(calls) == 2  # no context: every call dequantizes
    with reuse_dequantized():
        first = dequantized(packed, torch.bfloat16, fn)
        with reuse_dequantized():  # nested: the outer copies
            again = dequantized(packed.data, torch.bfloat16, fn)  # another tensor object, same storage
        assert again is first and first.dtype == torch.bfloat16
        dequantized(packed, torch.float32, fn)  # another dtype: its own copy
        dequantized(packed[2:], torch.float32, lambda: packed[2:].float())  # another offset: its own
        assert cached_weights() == 3 and len(calls) == 4
    assert cached_weights() == 0  # freed on exit


def test_temporary_weights_never_get_another_tensors_copy():
    """Tensors freed inside the context cannot hand their address to a new one: the cache keeps them alive."""
    with reuse_dequantized():
        for i in range(200):
            packed = torch.full((4096,), i % 256, dtype=torch.uint8)
            got = dequantized(packed, torch.float32, lambda: packed.float())
            assert torch.equal(got, torch.full((4096,), float(i % 256))), i
            del packed, got


def test_each_thread_has_its_own_cache():
    packed, calls, seen = torch.ones(4, dtype=torch.uint8), [], {}

    def fn():
        calls.append(threading.current_thread().name)
        return packed.float()

    def other():
        dequantized(packed, torch.float32, fn)  # no context on this thread: computed, not served or stored
        seen["cached"] = cached_weights()

    with reuse_dequantized():
        dequantized(packed, torch.float32, fn)
        thread = threading.Thread(target=other, name="other")
        thread.start()
        thread.join()
        assert cached_weights() == 1 and seen["cached"] == 0
    assert calls == ["MainThread", "other"]


def _model(chunks):
    from opentad.models.backbones.vit_adapter_qlora import VisionTransformerQLoRA

    torch.manual_seed(0)
    model = VisionTransformerQLoRA(**TINY)
    model.on_weights_loaded()
    model.freeze()
    apply_memory_policy(model, dataclasses.replace(model.memory_policy, backward_chunks=chunks))
    return model.train()


def _step(model, monkeypatch):
    """Gradients of the trainable parameters after one step, and the dequantizations per frozen ViT layer."""
    from opentad.models.utils.qlora import quantized_modules

    names = {m.weight.data_ptr(): n for n, m in quantized_modules(model).items()}
    counts, original = collections.Counter(), quant.dequantize_4bit  # every 4-bit dequantization goes through it,
    # called from the layers' products (quant) or from their weights (quant_weights)

    def counting(packed, *args, **kwargs):
        counts[names[packed.data_ptr()]] += 1
        return original(packed, *args, **kwargs)

    monkeypatch.setattr(quant, "dequantize_4bit", counting)
    monkeypatch.setattr(quant_weights, "dequantize_4bit", counting)
    x = torch.randn(4, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))  # 4 clips of 4 frames
    model.zero_grad(set_to_none=True)
    model(x).square().mean().backward()
    monkeypatch.undo()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: c for n, c in counts.items() if n.endswith(FROZEN)}
    return grads, frozen


def test_chunked_backward_dequantizes_each_frozen_weight_once_per_pass(monkeypatch):
    checkpointed, _ = _step(_model(chunks=1), monkeypatch)
    grads, counts = _step(_model(chunks=2), monkeypatch)
    # block 1 (input needs a gradient): one dequantization in forward for both row groups, one in backward for
    # every group's recomputation and input gradient; block 0 (input without gradient): forward only
    assert counts == {f"blocks.{b}.{layer}": 2 - (b == 0) for b in (0, 1) for layer in FROZEN}
    monkeypatch.setattr(chunked_residual, "reuse_dequantized", contextlib.nullcontext)
    uncached, counts_uncached = _step(_model(chunks=2), monkeypatch)
    groups = len(chunk_bounds(4, 2))  # 4 clips of 4 frames in 2 row groups
    # without the cache: each group in forward, in the recomputation and in the input gradient
    assert groups == 2 and counts_uncached["blocks.1.attn.qkv"] == 3 * groups
    assert grads.keys() == uncached.keys() == checkpointed.keys()
    for name in grads:
        assert torch.equal(grads[name], uncached[name]), name  # the cache changes no value
        torch.testing.assert_close(grads[name], checkpointed[name], rtol=0, atol=1e-5, msg=name)
