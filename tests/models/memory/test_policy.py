"""The memory policy: every option keeps the seeded loss and gradients of a tiny backbone, and is applied
from outside (plain blocks, the same state-dict keys).

Error model of the float64 comparisons: an option changes only the order in which the same float64 products
are summed (row-chunked matrix products, recomputation), never which values are computed, so each result
differs from the plain run by at most the rounding of a reordered sum: ``n * eps * sum|terms|`` with ``n``
the longest reduction (here below 10**3 terms) and ``sum|terms|`` bounded by ``10**3`` times the largest
value compared. A wrong option (other drop-path rows, a missing gradient path, a stale activation) changes
results at the size of the values themselves.
"""
import dataclasses

import pytest
import torch
import torch.utils.checkpoint as cp

from opentad.models.backbones.vit import VisionTransformerCP
from opentad.models.backbones.vit_adapter import VisionTransformerAdapter
from opentad.models.bricks.vit import FFN, Block
from opentad.models.memory import policy as policy_module
from opentad.models.memory.chunked_residual import ChunkedResidualFunction
from opentad.models.memory.frozen_mlp import FrozenMLP, FrozenMLPFunction
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy

EPS64 = torch.finfo(torch.float64).eps
TINY = dict(img_size=32, patch_size=16, embed_dims=16, depth=3, num_heads=2, num_frames=4, return_feat_map=True)

OPTIONS = {
    "checkpoint": dict(checkpoint=True),
    "checkpoint, upstream's rule": dict(checkpoint=True, checkpoint_needs_input_grad=True),
    "autograd's MLP": dict(checkpoint=True, frozen_mlp=False),
    "chunked backward 2": dict(checkpoint=True, backward_chunks=2),
    "chunked backward 4": dict(checkpoint=True, backward_chunks=4),
    "temporal checkpointing": dict(temporal_chunks=2, temporal_chunk_dim=0),
}
#: (checkpoint calls, chunked-residual calls, frozen-MLP passes) in one step, counted by hand.
#: adapter: block 0 runs without a graph, block 1's input needs no gradient, block 2's does (its frozen MLP is
#: chunked in forward and again when recomputed); fullft: every block trains, so nothing is frozen or chunked.
MECHANISMS = {
    "adapter": {
        "plain": (0, 0, 1),
        "checkpoint": (2, 0, 2),
        "checkpoint, upstream's rule": (1, 0, 2),
        "autograd's MLP": (2, 0, 0),
        # block 1's row groups run once without a graph, block 2's are recomputed; adapters checkpointed alone
        "chunked backward 2": (2, 2, 2),
        "chunked backward 4": (2, 2, 4),
        "temporal checkpointing": (2, 0, 4),
    },
    "fullft": {
        "plain": (0, 0, 0),
        "checkpoint": (3, 0, 0),
        "checkpoint, upstream's rule": (3, 0, 0),
        "autograd's MLP": (3, 0, 0),
        "chunked backward 2": (3, 0, 0),
        "chunked backward 4": (3, 0, 0),
        "temporal checkpointing": (2, 0, 0),
    },
}


@pytest.fixture
def mechanisms(monkeypatch):
    """Counts of the policy's checkpoints, chunked residuals and frozen-MLP passes."""
    counts = [0, 0, 0]

    def spy(index, real):
        def call(*args, **kwargs):
            counts[index] += 1
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(policy_module.cp, "checkpoint", spy(0, cp.checkpoint))
    monkeypatch.setattr(ChunkedResidualFunction, "apply", spy(1, ChunkedResidualFunction.apply))
    monkeypatch.setattr(FrozenMLPFunction, "apply", spy(2, FrozenMLPFunction.apply))
    return counts


def _model(kind: str, drop_path: float):
    torch.manual_seed(0)
    if kind == "adapter":
        model = VisionTransformerAdapter(**TINY, total_frames=8, adapter_index=[1, 2], drop_path_rate=drop_path)
    else:
        model = VisionTransformerCP(**TINY, drop_path_rate=drop_path)
    model = model.double().train()
    with torch.no_grad():  # adapters start as the identity: give every trainable value a gradient path
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def _step(model, policy: MemoryPolicy, seed: int = 5):
    """Seeded loss and gradients (of what trains) under ``policy``; 2 videos of 2 clips of 4 frames."""
    apply_memory_policy(model, policy)
    model.zero_grad(set_to_none=True)
    frames = torch.randn(4, 3, 4, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(seed)  # stochastic depth
    out = policy.run_backbone(model, frames)
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


def _close(got, want, what):
    tol = 1e3 * EPS64 * 1e3 * max(float(want.abs().max()), 1e-3)
    assert float((got - want).abs().max()) <= tol, what


@pytest.mark.parametrize("kind", ["adapter", "fullft"])
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_each_option_keeps_the_seeded_loss_and_gradients(kind, option, mechanisms):
    # temporal checkpointing recomputes each chunk's stochastic depth with draws for that chunk only
    drop_path = 0.0 if option == "temporal checkpointing" else 0.3
    model = _model(kind, drop_path)
    ref_loss, ref_grads = _step(model, MemoryPolicy())
    assert tuple(mechanisms) == MECHANISMS[kind]["plain"]
    mechanisms[:] = [0, 0, 0]
    loss, grads = _step(model, MemoryPolicy(**OPTIONS[option]))
    assert tuple(mechanisms) == MECHANISMS[kind][option]  # the option did run
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(grads) == set(ref_grads) == trainable and trainable
    _close(loss, ref_loss, "loss")
    for name in trainable:
        _close(grads[name], ref_grads[name], name)
    if drop_path:  # rows were dropped, so a recomputation drawing other rows would show
        assert not torch.equal(_step(model, MemoryPolicy(), seed=6)[0], ref_loss)


def test_frozen_dtype_rounds_the_frozen_values_once_and_keeps_the_stream_in_it():
    """Reference: the plain model with its frozen values rounded to bf16 beforehand, under bf16 autocast. The
    policy also keeps the token stream between blocks in bf16, one rounding (relative 2**-8) per block output;
    through 3 blocks and the loss that bounds the relative change by 2 * 3 * 2**-8 (x 4 for the gradients,
    each a product of such factors)."""
    ref, low = _model("adapter", 0.0).float(), _model("adapter", 0.0).float()
    with torch.no_grad():
        for p in ref.parameters():
            if not p.requires_grad:
                p.copy_(p.bfloat16().float())
    apply_memory_policy(low, MemoryPolicy(frozen_dtype=torch.bfloat16))
    assert {p.dtype for p in low.parameters() if not p.requires_grad} == {torch.bfloat16}
    assert {p.dtype for p in low.parameters() if p.requires_grad} == {torch.float32}
    frames = torch.randn(4, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    results = []
    for model in (ref, low):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(frames.to(torch.bfloat16 if model is low else torch.float32))
        out.float().square().mean().backward()
        results.append((out.float(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (out_ref, g_ref), (out_low, g_low) = results
    bound = 2 * 3 * 2.0**-8
    assert float((out_low - out_ref).detach().norm() / out_ref.detach().norm()) <= bound
    assert set(g_low) == set(g_ref)
    for name in g_ref:
        assert float((g_low[name] - g_ref[name]).norm() / g_ref[name].norm()) <= 4 * bound, name


def test_upstream_rule_checkpoints_only_blocks_whose_input_needs_a_gradient(monkeypatch):
    calls = []
    real = cp.checkpoint
    monkeypatch.setattr(policy_module.cp, "checkpoint", lambda *a, **k: calls.append(k) or real(*a, **k))
    model = _model("adapter", 0.0)  # block 0 runs without a graph, block 1's input needs none, block 2's does
    _step(model, MemoryPolicy(checkpoint=True, checkpoint_needs_input_grad=True))
    assert calls == [dict(use_reentrant=False)]
    calls.clear()
    _step(model, MemoryPolicy(checkpoint=True))  # ours: every block with a graph
    assert len(calls) == 2


def test_applied_from_outside_blocks_stay_plain_and_keys_unchanged():
    model = _model("adapter", 0.0)
    keys = list(model.state_dict())
    apply_memory_policy(model, MemoryPolicy(frozen_mlp=False))
    assert all(type(b.mlp) is FFN for b in model.blocks) and list(model.state_dict()) == keys
    apply_memory_policy(model, MemoryPolicy(frozen_mlp=True, backward_chunks=4))
    assert all(type(b.mlp) is FrozenMLP for b in model.blocks) and list(model.state_dict()) == keys
    assert model.memory_policy.backward_chunks == 4
    block_state = {k for b in model.blocks for k in vars(b) if not k.startswith("_")}
    assert not block_state & {"with_cp", "backward_chunks", "chunked"}  # no memory switches inside a block
    assert "memory" not in Block.forward.__code__.co_names


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_chunk_counts_are_refused(bad):
    with pytest.raises(ValueError, match="backward_chunks="):
        MemoryPolicy(backward_chunks=bad)
    with pytest.raises(ValueError, match="temporal_chunks="):
        dataclasses.replace(MemoryPolicy(), temporal_chunks=bad)
