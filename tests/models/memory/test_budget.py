"""The memory budget at run time on the CPU: plans applied per block keep the loss and gradients, held weight
copies change no value, and the choice follows the modelled costs.

Error model: a plan changes where values wait, when they are recomputed and (``hold``) whether a 4-bit weight is
dequantized once or at every use, never which values are multiplied; results differ from the plain run only by
reordered float32 sums. In this tiny ViT every sum has at most 256 terms (width 64, hidden width 128, 4 clips
of 8 tokens), each bounded by the largest value compared times 256, so the bound is
``256 * eps32 * 256 * max|value|``. A wrong plan (a lost gradient path, other weights) changes results at the
size of the values.
"""
import dataclasses

import pytest
import torch
import torch.utils.checkpoint as cp

pytest.importorskip("bitsandbytes")

from opentad.models.bricks import quant, quant_weights  # noqa: E402
from opentad.models.memory import apply as apply_module  # noqa: E402
from opentad.models.memory import policy as policy_module  # noqa: E402
from opentad.models.memory.budget import BudgetPlanner  # noqa: E402
from opentad.models.memory.chunked_residual import ChunkedResidualFunction  # noqa: E402
from opentad.models.memory.dequant_cache import hold_dequantized  # noqa: E402
from opentad.models.memory.planner import BlockPlan, BudgetError, candidate_plans  # noqa: E402
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy  # noqa: E402
from tests.models.memory.tiny_qlora import tiny_qlora_vit  # noqa: E402

EPS32 = torch.finfo(torch.float32).eps


def _step(model, policy):
    apply_memory_policy(model, policy)
    model.zero_grad(set_to_none=True)
    frames = torch.randn(4, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)
    out = policy.run_backbone(model, frames)
    loss = (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _close(got, want, what):
    tol = 256 * EPS32 * 256 * max(float(want.abs().max()), 1e-6)
    assert float((got - want).abs().max()) <= tol, what


class _Fixed(BudgetPlanner):
    """A planner whose plans are given (by block position among the recording blocks)."""

    def __init__(self, plans):
        super().__init__(budget_gib=1.0)
        self.given = plans

    def _choose(self, backbone, blocks, frames, policy):
        return {id(b): p for b, p in zip(blocks, self.given)}, None, 0, None


@pytest.mark.parametrize("plans", [
    (BlockPlan(checkpoint=False, hold=True), BlockPlan(backward_chunks=4, hold=True)),
    (BlockPlan(checkpoint=False), BlockPlan(hold=True)),
    (BlockPlan(backward_chunks=4), BlockPlan(checkpoint=False, hold=True)),
])
def test_plans_per_block_keep_the_seeded_loss_and_gradients(plans, monkeypatch):
    model = tiny_qlora_vit()
    ref_loss, ref_grads = _step(model, MemoryPolicy(checkpoint=True))
    calls = {"checkpoint": 0, "chunked": 0, "dequantize": 0}

    def spy(name, real):
        def call(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(policy_module.cp, "checkpoint", spy("checkpoint", cp.checkpoint))
    monkeypatch.setattr(ChunkedResidualFunction, "apply", spy("chunked", ChunkedResidualFunction.apply))
    for module in (quant, quant_weights):  # the layers' products and their weights dequantize through it
        monkeypatch.setattr(module, "dequantize_4bit", spy("dequantize", quant.dequantize_4bit))
    policy = MemoryPolicy(checkpoint=True, memory_budget_gib=1.0, planner=_Fixed(plans))
    loss, grads = _step(model, policy)
    assert model.graph_free_blocks() == 1  # block 0 has no adapter: plans for blocks 1 and 2
    assert [policy.planner.plan_of(b) for b in model.blocks] == [None, *plans]
    # by hand: one checkpoint per recomputed block (of the whole block, or of the adapter after a chunked
    # residual); the chunked residual once per chunked block
    assert calls["checkpoint"] == sum(p.checkpoint for p in plans)
    assert calls["chunked"] == sum(p.backward_chunks > 1 for p in plans)
    held = [isinstance(getattr(m, "held_weight", None), torch.Tensor) for b in model.blocks[1:] for m in b.modules()
            if quant.is_quantized(m)]
    # qkv, proj, fc1, fc2 and the adapter's down and up projections of each holding block
    assert sum(held) == 6 * sum(p.hold for p in plans) and len(held) == 12
    assert set(grads) == set(ref_grads) and grads
    _close(loss, ref_loss, "loss")
    for name in grads:
        _close(grads[name], ref_grads[name], name)
    assert "held_weight" not in "".join(model.state_dict())


def test_held_copy_is_the_dequantized_weight_and_is_used_instead():
    model = tiny_qlora_vit()
    layer = model.blocks[1].attn.qkv
    assert hold_dequantized(model.blocks[1], True, torch.float32) == 4 * sum(  # float32: 4 bytes
        m.in_features * m.out_features for m in model.blocks[1].modules() if quant.is_quantized(m))
    torch.testing.assert_close(layer.held_weight, quant.dequantize_weight(layer), rtol=0, atol=0)
    x = torch.randn(5, 64)
    with torch.no_grad():
        layer.held_weight = torch.zeros_like(layer.held_weight)  # the copy, not the packed weight, is used
        assert torch.equal(layer(x), torch.zeros(5, 192))
    hold_dequantized(model.blocks[1], False)
    assert layer.held_weight is None and layer(x).abs().sum() > 0


def test_budget_on_the_cpu_uses_the_modelled_costs(caplog):
    model = tiny_qlora_vit()
    huge = MemoryPolicy(checkpoint=True, memory_budget_gib=64.0)
    with caplog.at_level("DEBUG", logger="opentad.models.memory.budget"):
        _step(model, huge)
    # the debug line names every candidate plan of the block group with its cost
    costs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("block group 0: ")]
    assert len(costs) == 1
    for plan in candidate_plans(chunks=4, quantized=True, offload=False):
        assert f"{plan.name} " in costs[0] and "multiply-adds, kept" in costs[0]
    assert costs[0].count("; ") == len(candidate_plans(chunks=4, quantized=True, offload=False)) - 1
    # every activation fits: nothing is recomputed, and holding saves the dequantizations
    assert [huge.planner.plan_of(b).name for b in model.blocks[1:]] == ["keep+hold"] * 2
    assert huge.planner.last.peak <= 64 * 2**30
    with pytest.raises(BudgetError, match=r"memory_budget_gib=0\.01: weights, frames and reserve alone take 0\.2"):
        _step(tiny_qlora_vit(), MemoryPolicy(checkpoint=True, memory_budget_gib=0.01))


def test_with_cuda_graphs_what_the_graphs_hold_is_counted_once_ahead(monkeypatch):
    """The graphs keep a static input, output and incoming gradient and a gradient buffer per trained parameter
    beside what the plans count: the fixed memory counts that before their capture (else a capture grew the
    memory in use, which re-planned: g's graphed row, 2026-12-07). The count ahead is checked against what
    emulated graphs of the same blocks and input then hold (``BlockGraphs.held_bytes``)."""
    from opentad.models.memory import cuda_graphs
    from opentad.models.memory.graph_capture import EmulatedGraphBackend

    monkeypatch.setattr(cuda_graphs, "CudaGraphBackend", lambda: EmulatedGraphBackend(min_bytes=0))
    model = tiny_qlora_vit()
    frames = torch.randn(4, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tokens, _ = model.embed(frames[:1])  # [1, n, C]
    planner = BudgetPlanner(budget_gib=8.0)
    recording = list(model.blocks)[model.graph_free_blocks():]
    plain = planner._fixed(model, frames, tokens, recording, MemoryPolicy(checkpoint=True))
    policy = MemoryPolicy(checkpoint=True, cuda_graphs=True)
    graphed = planner._fixed(model, frames, tokens, recording, policy)
    assert graphed[1] == plain[1]
    apply_memory_policy(model, policy)
    for _ in range(policy.graphs.warmup + 1):  # the eager warm-up calls, then the capture
        policy.run_backbone(model, frames).sum().backward()
    assert len(policy.graphs) == 1
    assert graphed[0] - plain[0] == policy.graphs.held_bytes((4, *tokens.shape[1:])) > 3 * tokens.numel() * 4 * 4


@pytest.mark.parametrize("compiled", [False, True])
def test_compiled_blocks_try_the_held_plans_first(compiled, monkeypatch):
    """A compiled block whose 4-bit layers hold no dequantized copy breaks its graph at each of them: with
    ``compile_blocks`` the planner first costs and chooses among the held plans alone, and costs the others only
    when those do not fit (here: made not to fit), each plan once; without it, all plans at once."""
    from opentad.models.memory import budget as budget_module

    chosen, costed, real_choose, real_costs = [], [], budget_module.choose_plans, budget_module.vit_block_costs

    def choose(costs, **kwargs):
        chosen.append({plan.hold for group in costs for plan in group})
        if chosen[-1] == {True}:
            raise BudgetError("as if the held copies did not fit")
        return real_choose(costs, **kwargs)

    def cost(block, plans, *args):
        costed.extend(plans)
        return real_costs(block, plans, *args)

    monkeypatch.setattr(budget_module, "choose_plans", choose)
    monkeypatch.setattr(budget_module, "vit_block_costs", cost)
    model = tiny_qlora_vit()
    policy = MemoryPolicy(checkpoint=True, memory_budget_gib=64.0, compile_blocks=compiled)
    policy.planner.prepare(model, torch.randn(4, 3, 4, 32, 32), policy)  # plans only: no block runs
    assert chosen == ([{True}, {False, True}] if compiled else [{False, True}])
    assert len(costed) == len(set(costed)) == 6  # keep, checkpoint, chunked (no offloading on the CPU), held or not:
    # the two adapter blocks are one group, each plan costed once
    assert [policy.planner.plan_of(b).name for b in model.blocks[1:]] == ["keep+hold"] * 2


def test_plain_checkpointing_is_offered_only_where_it_beats_the_chunked_backward(monkeypatch):
    """The planner offers ``choose_plans`` a plain-checkpoint plan only when its chunked twin is more than the tie
    slower. The CPU's modelled costs put the chunked plans ahead (their recomputation skips ``fc2``): only they are
    offered; made 50% slower (then a third behind plain checkpointing: 1.5 * 32 against 36 multiply-adds per C^2 and
    token for an MLP of width 4C), both."""
    from opentad.models.memory import budget as budget_module

    offered, real_choose, real_costs = [], budget_module.choose_plans, budget_module.vit_block_costs

    def choose(costs, **kwargs):
        offered.append({plan.name for group in costs for plan in group})
        return real_choose(costs, **kwargs)

    def slower_chunks(block, plans, *args):
        costs = real_costs(block, plans, *args)
        return {p: dataclasses.replace(c, seconds=c.seconds * (1.5 if p.backward_chunks > 1 else 1.0))
                for p, c in costs.items()}

    monkeypatch.setattr(budget_module, "choose_plans", choose)
    frames = torch.randn(4, 3, 4, 32, 32)
    policy = MemoryPolicy(checkpoint=True, memory_budget_gib=64.0)
    policy.planner.prepare(tiny_qlora_vit(), frames, policy)
    assert offered[-1] == {"keep", "keep+hold", "checkpoint+chunks4", "checkpoint+chunks4+hold"}
    monkeypatch.setattr(budget_module, "vit_block_costs", slower_chunks)
    policy = MemoryPolicy(checkpoint=True, memory_budget_gib=64.0)
    policy.planner.prepare(tiny_qlora_vit(), frames, policy)
    assert offered[-1] == {p.name for p in candidate_plans(chunks=4, quantized=True, offload=False)}


@pytest.fixture
def offered(monkeypatch):
    """The names of the plans each planning offers to ``choose_plans`` (a set per call), in order."""
    from opentad.models.memory import budget as budget_module

    calls, real_choose = [], budget_module.choose_plans

    def choose(costs, **kwargs):
        calls.append({plan.name for group in costs for plan in group})
        return real_choose(costs, **kwargs)

    monkeypatch.setattr(budget_module, "choose_plans", choose)
    return calls


def test_a_pinned_plan_runs_on_every_recording_block_and_keeps_the_loss(monkeypatch, offered):
    """``memory_plan`` offers the planner that one plan for every block (here where the budget alone would keep
    every activation, the test above): it is costed, checked against the budget and applied; offloading is
    dropped on the CPU, holding where a block has no 4-bit layer."""
    from opentad.models.memory import budget as budget_module

    model = tiny_qlora_vit()
    ref_loss, ref_grads = _step(model, MemoryPolicy(checkpoint=True))
    policy = MemoryPolicy(checkpoint=True, memory_budget_gib=64.0, memory_plan="checkpoint+chunks2+offload+hold")
    loss, grads = _step(model, policy)
    assert offered == [{"checkpoint+chunks2+hold"}]
    assert [policy.planner.plan_of(b) for b in model.blocks] == [None] + [BlockPlan(backward_chunks=2, hold=True)] * 2
    assert set(grads) == set(ref_grads) and grads
    _close(loss, ref_loss, "loss")
    for name in grads:
        _close(grads[name], ref_grads[name], name)
    float_model = tiny_qlora_vit()
    for m in float_model.modules():  # a block without 4-bit layers has nothing to hold
        if quant.is_quantized(m):
            m.held_weight = None
    planner = BudgetPlanner(budget_gib=64.0, pinned=BlockPlan(checkpoint=False, hold=True))
    monkeypatch.setattr(budget_module, "_quantized", lambda block: False)
    planner.prepare(float_model, torch.randn(4, 3, 4, 32, 32), MemoryPolicy(checkpoint=True))
    assert offered[-1] == {"keep"}


@pytest.mark.parametrize("mode, held", [("forward", True), ("all", False)])
def test_no_plan_holds_weights_that_fp8_products_would_not_read(monkeypatch, offered, mode, held):
    """With ``frozen_fp8="all"`` every product of the 4-bit layers is fp8 (``test_fp8_policy.py``: a held copy
    serves none): no held plan is costed or chosen. With the fp8 forward alone the bf16 backward reads held
    copies, so they stay on offer and, compiled, are tried first, as without fp8 (with a held copy the fp8
    product traces into the compiled block: ``test_compile_fp8.py``)."""
    model = tiny_qlora_vit()
    policy = MemoryPolicy(checkpoint=True, frozen_dtype=torch.bfloat16, frozen_fp8=mode, memory_budget_gib=64.0,
                          compile_blocks=True)
    monkeypatch.setattr(apply_module, "compile_blocks", lambda *a: None)  # the planner's choice only
    apply_memory_policy(model, policy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        policy.run_backbone(model, torch.randn(4, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1)))
    assert len(offered) == 1
    holding = {name for name in offered[0] if name.endswith("+hold")}
    if held:
        assert holding and offered[0] == holding  # the held plans alone, first (they fit 64 GiB)
    else:
        assert not holding and not any(policy.planner.plan_of(b).hold for b in model.blocks[1:])
