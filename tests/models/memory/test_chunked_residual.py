"""Chunked backward of a frozen block: the gradients of ordinary checkpointing, a fraction of the working set."""
import contextlib

import pytest
import torch

from opentad.models.bricks.vit import Block
from opentad.models.bricks.vit_adapter import TemporalAdapter
from opentad.models.memory import chunked_residual
from opentad.models.memory.chunked_residual import ChunkedResidualFunction, chunk_bounds
from opentad.models.memory.frozen_mlp import FrozenMLP
from opentad.models.memory.offload import OffloadSavedTensors
from opentad.models.memory.policy import MemoryPolicy

CLIPS, T, H, W, C = 3, 2, 2, 2, 32  # per video: 3 clips of 2 tubelets of 2x2 tokens


def _block(drop_path=0.0, seed=0):
    torch.manual_seed(seed)
    adapter = TemporalAdapter(embed_dims=C, temporal_size=CLIPS * T)
    block = Block(embed_dims=C, num_heads=2, drop_path_rate=drop_path, adapter=adapter)
    for module in (block.norm1, block.attn, block.norm2, block.mlp):
        module.requires_grad_(False)
    with torch.no_grad():  # adapters start as the identity: give them weights so every part gets a gradient
        for p in adapter.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return block.train()


def _tokens(videos=2, seed=1):
    torch.manual_seed(seed)
    return torch.randn(videos * CLIPS, T * H * W, C)


def _step(block, x, chunks, seed=7, context=None):
    """Output and gradients (input, adapter parameters) of one forward (inside ``context``) and backward."""
    block.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    torch.manual_seed(seed)  # stochastic depth draws from here
    with context or contextlib.nullcontext():
        out = _run(block, x, chunks)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = {n: p.grad.clone() for n, p in block.named_parameters() if p.grad is not None}
    return out.detach(), x.grad, grads


def _run(block, x, chunks):
    """The block checkpointed as the memory policy runs it, with ``chunks`` row groups."""
    return MemoryPolicy(checkpoint=True, backward_chunks=chunks).run_block(block, x, (H, W))


def _count_calls(monkeypatch):
    calls = []
    original = ChunkedResidualFunction.apply
    monkeypatch.setattr(ChunkedResidualFunction, "apply", lambda *a: calls.append(a[0].shape[0]) or original(*a))
    return calls


@pytest.mark.parametrize("drop_path", [0.0, 0.4])
@pytest.mark.parametrize("chunks", [2, 4, 6, 10])
def test_chunked_backward_equals_checkpointing(drop_path, chunks, monkeypatch):
    block, x = _block(drop_path), _tokens()
    ref_out, ref_gx, ref_grads = _step(block, x, chunks=1)
    calls = _count_calls(monkeypatch)
    out, gx, grads = _step(block, x, chunks=chunks)
    assert calls == [6]  # the chunked path ran, once, on all 6 clips
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-6)
    torch.testing.assert_close(gx, ref_gx, rtol=0, atol=1e-6)
    assert set(grads) == set(ref_grads) == {"adapter." + n for n, _ in block.adapter.named_parameters()}
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=0, atol=1e-5, msg=name)
    if drop_path:  # some rows were dropped: the recomputed chunks must drop the same ones
        assert not torch.equal(ref_out, _step(block, x, chunks=1, seed=8)[0])


@pytest.fixture
def nan_filled_empty():
    """Deterministic algorithms on: ``torch.empty`` fills with NaN, so a read of the skipped output shows."""
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    assert torch.empty(4).isnan().all() and torch.utils.deterministic.fill_uninitialized_memory
    yield
    torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("drop_path", [0.0, 0.4])
def test_recomputation_skips_the_mlp_second_product(drop_path, autocast, monkeypatch, nan_filled_empty):
    """With the policy's FrozenMLP, the recomputation runs no ``fc2`` (the forward's chunks do), and the
    gradients are those of the recomputation that runs it, bit for bit, though its skipped output is NaN."""
    block, x = _block(drop_path), _tokens()
    block.mlp.__class__ = FrozenMLP  # as the memory policy switches it
    fc2_rows = []
    block.mlp.layers[1].register_forward_hook(lambda m, args, out: fc2_rows.append(out.shape[0]))
    context = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast)  # noqa: E731
    _step(block, x, chunks=1, context=context())  # ordinary checkpointing: fc2 in forward and in recomputation
    assert len(fc2_rows) == 2
    fc2_rows.clear()
    got = _step(block, x, chunks=3, context=context())
    assert fc2_rows == [2, 2, 2]  # the three forward chunks of 2 clips; the recomputation skipped it
    monkeypatch.setattr(chunked_residual, "output_unused", contextlib.nullcontext)
    full = _step(block, x, chunks=3, context=context())  # the recomputation with fc2
    assert len(fc2_rows) == 3 + 3 + 3
    for a, b in zip(got[:2], full[:2]):
        assert torch.isfinite(a).all() and torch.equal(a, b)
    assert got[2].keys() == full[2].keys() == {"adapter." + n for n, _ in block.adapter.named_parameters()}
    for name in got[2]:
        assert torch.isfinite(got[2][name]).all() and torch.equal(got[2][name], full[2][name]), name


def test_trainable_attention_or_dropout_keeps_ordinary_checkpointing(monkeypatch):
    calls = _count_calls(monkeypatch)
    block, x = _block(), _tokens()
    block.attn.qkv.weight.requires_grad_(True)
    _, _, grads = _step(block, x, chunks=3)
    assert "attn.qkv.weight" in grads and calls == []
    block = _block()
    block.attn.proj_drop.p = 0.1
    _step(block, x, chunks=3)
    assert calls == []
    block.eval()  # dropout inactive in eval mode: chunked again
    _step(block, x, chunks=3)
    assert calls == [6]
    block = _block()  # dropout in the adapter (LoRA's) is the adapter checkpoint's business: still chunked
    block.adapter.lora_like_dropout = torch.nn.Dropout(0.1)
    _step(block, x, chunks=3)
    assert calls == [6, 6]


def test_bf16_autocast_is_restored_in_backward():
    block, x = _block(drop_path=0.2), _tokens()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = _step(block, x, chunks=1)
        got = _step(block, x, chunks=3)
    assert got[0].dtype == ref[0].dtype
    torch.testing.assert_close(got[0].float(), ref[0].float(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(got[1], ref[1], rtol=5e-2, atol=5e-2)
    for name in ref[2]:
        torch.testing.assert_close(got[2][name], ref[2][name], rtol=5e-2, atol=5e-2, msg=name)


def test_offloading_keeps_the_inputs_out_and_the_gradients_equal():
    block, x = _block(drop_path=0.2), _tokens()
    ref = _step(block, x, chunks=3)
    offload = OffloadSavedTensors(min_bytes=x.numel() * x.element_size(), force=True)
    got = _step(block, x, chunks=3, context=offload)
    assert offload.offloaded_tensors == 2  # the block input (kept by the function) and the adapter's input
    for a, b in zip(got[:2], ref[:2]):
        assert torch.equal(a, b)


def test_input_without_grad_trains_the_adapter_without_recomputing(monkeypatch):
    """The first adapter block's input needs no gradient: attention and MLP run once, the adapter still learns."""
    block, x = _block(drop_path=0.3), _tokens()
    block.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    (_run(block, x, 1) ** 2).sum().backward()
    ref = {n: p.grad.clone() for n, p in block.named_parameters() if p.grad is not None}
    calls = _count_calls(monkeypatch)
    recomputed = []
    residual = block.residual
    monkeypatch.setattr(block, "residual", lambda *a: recomputed.append(torch.is_grad_enabled()) or residual(*a))
    block.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    (_run(block, x, 3) ** 2).sum().backward()
    assert calls == [6] and recomputed == [False, False, False]  # forward chunks only, no recomputation
    assert set(ref) == {n for n, p in block.named_parameters() if p.grad is not None}
    for name, grad in ref.items():
        torch.testing.assert_close(dict(block.named_parameters())[name].grad, grad, rtol=1e-5, atol=1e-6)


def test_chunk_bounds_hand_worked():
    assert chunk_bounds(10, 3) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(5, 10) == [(i, i + 1) for i in range(5)]
    assert chunk_bounds(7, 1) == [(0, 7)]
    assert chunk_bounds(6, 4) == [(0, 2), (2, 4), (4, 6)]
    x = _tokens().requires_grad_(True)
    assert chunked_residual.residual_chunkable(_block(), x, 1) is False  # one chunk: ordinary checkpointing
    assert chunked_residual.residual_chunkable(_block(), x, 2) is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_bf16_chunked_backward_matches_and_needs_less_memory():
    """ViT-S width, 96 clips of 800 tokens (batch 2 of the AdaTAD recipe), bf16 autocast, as the configs run,
    with the policy's FrozenMLP (whose recomputation skips ``fc2``)."""
    torch.manual_seed(0)
    adapter = TemporalAdapter(embed_dims=384, temporal_size=48 * 8)
    block = Block(embed_dims=384, num_heads=6, drop_path_rate=0.1, adapter=adapter).cuda().train()
    block.mlp.__class__ = FrozenMLP  # as the memory policy switches it
    for module in (block.norm1, block.attn, block.norm2, block.mlp):
        module.requires_grad_(False)
    with torch.no_grad():
        for p in adapter.parameters():
            p.copy_(torch.randn_like(p) * 0.02)
    x0 = torch.randn(96, 800, 384, device="cuda", dtype=torch.bfloat16)
    fc2_calls = []
    block.mlp.layers[1].register_forward_hook(lambda *a: fc2_calls.append(1))
    results, fc2_in_backward = {}, {}
    for chunks in (1, 4):
        block.zero_grad(set_to_none=True)
        x = x0.clone().requires_grad_(True)
        torch.manual_seed(1)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = MemoryPolicy(checkpoint=True, backward_chunks=chunks).run_block(block, x, (10, 10))
        grad = torch.randn_like(out)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        before = len(fc2_calls)
        out.backward(grad)
        torch.cuda.synchronize()
        fc2_in_backward[chunks] = len(fc2_calls) - before
        results[chunks] = (torch.cuda.max_memory_allocated() - base, x.grad.float(), adapter.down_proj.weight.grad.clone())
    (peak1, gx1, gw1), (peak4, gx4, gw4) = results[1], results[4]
    assert fc2_in_backward[1] > 0 and fc2_in_backward[4] == 0  # checkpointing recomputes fc2; the chunked path not
    assert peak4 < 0.6 * peak1, (peak4 / 2**20, peak1 / 2**20)
    # Error model: both sides run the same bf16 ops on the same values, grouped into other row counts, so they
    # differ only where a bf16 rounding (relative 2^-8) of an intermediate falls differently; a gradient entry sums
    # such intermediates over the block's few layers. Allowed: 8 bf16 units of the largest entry.
    for got, ref in ((gx4, gx1), (gw4.float(), gw1.float())):
        assert torch.isfinite(ref).all() and ref.abs().max() > 0
        torch.testing.assert_close(got, ref, rtol=0, atol=8 * 2**-8 * ref.abs().max().item())
