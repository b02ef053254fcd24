"""CUDA graphs of the blocks (``cuda_graphs``): what surrounds the graphs, on the CPU through the emulating
backend (each "replay" runs the captured function into the same static buffers); on CUDA: test_cuda_graphs_cuda.py.

Error model: tests/models/memory/graph_cases.py (float64; only the order of sums may differ).
"""
import copy
import dataclasses
import pickle
import types

import pytest
import torch

from opentad.models.backbones.wrapper_options import WrapperOptions
from opentad.models.memory.cuda_graphs import BlockGraphs, EmulatedGraphBackend, tensors_read
from opentad.models.memory.graph_capture import Replay
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from opentad.utils.config import ConfigError
from tests.models.memory.graph_cases import close, drawing_like, frames_, graphed, model_, other_states, same, step
from tests.models.memory.tiny_qlora import tiny_qlora_vit



@pytest.fixture
def replays(monkeypatch):
    """How many steps ran through the captured graphs."""
    count = [0]
    real = Replay.apply

    def spy(*args):
        count[0] += 1
        return real(*args)

    monkeypatch.setattr(Replay, "apply", spy)
    return count


def _train(model, policy: MemoryPolicy, steps: int = 4):
    """``steps`` SGD steps on other frames each time; the losses and the final weights."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    apply_memory_policy(model, policy)
    losses = []
    for k in range(steps):
        loss, _ = step(model, policy, frames_() * (1 + 0.25 * k))
        optimizer.step()  # in place: the graphs must read the new weights
        losses.append(loss)
    return losses, {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("options, staged", [
    (dict(), 0), (dict(checkpoint=True), 0), (dict(checkpoint=True, backward_chunks=2), 0),
    (dict(checkpoint=True, offload_activations=True), 3),  # each block's input
    # each block's input and its adapter's; the first block's frozen part saves nothing without input grad
    (dict(checkpoint=True, backward_chunks=2, offload_activations=True), (5, 6)),
], ids=["keep", "checkpoint", "chunked", "checkpoint-offload", "chunked-offload"])
@pytest.mark.parametrize("input_grad", [False, True], ids=["frozen-embedding", "trained-embedding"])
def test_graphed_training_follows_eager_training(options, staged, input_grad, replays):
    """Other frames every step and an optimizer step between replays: the graphed run's losses and weights are
    the eager run's (a replay of a stale input or stale weights would not be). With a trained patch embedding the
    blocks' input needs a gradient too (returned last by the backward graph). Offloading blocks stage what they
    save in host buffers (``staged`` tensors per forward): a buffer read before it is written, or the wrong one,
    would not give the eager gradients."""
    def fresh():
        model = model_()
        model.patch_embed.requires_grad_(input_grad)
        return model

    want_losses, want = _train(fresh(), MemoryPolicy(**options))
    policy = graphed(**options)
    losses, got = _train(fresh(), policy)
    assert policy.graphs.backend.captures == 1 and replays[0] == 3 and len(policy.graphs) == 1
    (captured,) = policy.graphs._captured.values()
    assert len(captured.offload.layouts) == (staged[input_grad] if isinstance(staged, tuple) else staged)
    assert any(n.startswith("patch_embed") for n in got) == input_grad
    for k, (a, b) in enumerate(zip(losses, want_losses)):
        close(a, b, f"loss {k}")
    for name in want:
        close(got[name], want[name], name)


def test_what_trains_and_the_policy_are_part_of_the_key():
    """Freezing a parameter after capture, or replacing the policy (``dataclasses.replace``, as the wrapper's
    options do), captures anew instead of replaying graphs made for other parameters or plans."""
    model, frames = model_(), frames_()
    policy = graphed(warmup=0, checkpoint=True)
    apply_memory_policy(model, policy)
    step(model, policy, frames)
    frozen = next(p for n, p in model.named_parameters() if p.requires_grad and "adapter" in n)
    frozen.requires_grad_(False)
    apply_memory_policy(model, MemoryPolicy(checkpoint=True))
    want = step(model, MemoryPolicy(checkpoint=True), frames)
    apply_memory_policy(model, policy)
    same(step(model, policy, frames), want)
    assert policy.graphs.backend.captures == 2
    chunked = dataclasses.replace(policy, backward_chunks=2)
    assert chunked.graphs is not policy.graphs and len(chunked.graphs) == 0
    assert dataclasses.replace(policy).graphs is policy.graphs  # the same settings keep their graphs


def test_copies_start_without_graphs():
    model = model_()
    policy = graphed(warmup=0, checkpoint=True)
    apply_memory_policy(model, policy)
    step(model, policy, frames_())
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        graphs = copied.memory_policy.graphs
        assert isinstance(graphs, BlockGraphs) and len(graphs) == 0 and graphs.settings == policy.graphs.settings
    assert len(policy.graphs) == 1


def test_tensors_held_in_objects_lists_and_weights_are_part_of_the_key():
    """What a graph reads where it was at capture: a fp8-style cache object with slots, a list of tensors, and a
    tensor carried by a parameter (a 4-bit weight's quantization state)."""
    class Cache:
        __slots__ = ("q", "scale")

        def __init__(self):
            self.q, self.scale = torch.ones(3), torch.ones(1)

    block = torch.nn.Linear(2, 2)
    block.weight.state = types.SimpleNamespace(absmax=torch.ones(2))
    block.cache, block.listed = Cache(), [torch.zeros(2)]
    before = tensors_read([block])
    for change in (lambda: setattr(block.cache, "q", torch.ones(3)), lambda: block.listed.__setitem__(0, torch.ones(2)),
                   lambda: setattr(block.weight.state, "absmax", torch.ones(2))):
        change()
        after = tensors_read([block])
        assert after != before
        before = after


def test_recomputation_draws_what_the_forward_drew():
    """Stochastic depth in checkpointed blocks: the replayed backward recomputes each block with its generator
    set back, so the gradients are those of an eager run without recomputation drawing the same numbers."""
    model, frames = model_(drop_path=0.5), frames_()
    policy = graphed(checkpoint=True)
    apply_memory_policy(model, policy)
    step(model, policy, frames)  # warm-up
    got = step(model, policy, frames, seed=7)
    (captured,) = policy.graphs._captured.values()
    states = {id(b): captured.states[id(b)] for b in model.blocks}  # a checkpointed block's adapter: the block's
    same(got, drawing_like(model, frames, states, seed=7))
    assert not torch.equal(drawing_like(model, frames, other_states(states), seed=7)[0], got[0])


def test_chunked_recomputation_of_lora_dropout_draws_what_the_forward_drew():
    """The QLoRA adapters' LoRA dropout, with the chunked backward: the adapter's checkpoint draws from the
    adapter's generator, set back before the recomputation."""
    model = tiny_qlora_vit().double()
    frames = frames_()
    policy = graphed(checkpoint=True, backward_chunks=2)
    apply_memory_policy(model, policy)
    step(model, policy, frames)
    got = step(model, policy, frames, seed=7)
    (captured,) = policy.graphs._captured.values()
    adapters = {id(b.adapter) for b in model.blocks if b.adapter is not None}
    assert adapters and adapters <= set(captured.states)
    same(got, drawing_like(model, frames, captured.states, seed=7))
    assert not torch.equal(drawing_like(model, frames, other_states(captured.states), seed=7)[0], got[0])


def test_a_second_forward_before_backward_runs_eagerly(replays):
    model, frames = model_(), frames_()
    apply_memory_policy(model, MemoryPolicy(checkpoint=True))

    def two_forwards(policy):
        model.zero_grad(set_to_none=True)
        outs = [policy.run_backbone(model, frames * s) for s in (1.0, 0.5)]
        sum((o * o).sum() for o in outs).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    want = two_forwards(MemoryPolicy(checkpoint=True))
    policy = graphed(warmup=0, checkpoint=True)
    apply_memory_policy(model, policy)
    for _ in range(2):
        got = two_forwards(policy)
        assert set(got) == set(want)
        for name in want:
            close(got[name], want[name], name)
    assert replays[0] == 2  # one graphed forward per step; the second ran eagerly


def test_gradients_accumulate_over_steps_without_zeroing():
    """Two graphed steps without ``zero_grad`` sum their gradients as eager ones do (a replay must not write
    into a gradient that autograd already holds)."""
    model, frames = model_(), frames_()
    apply_memory_policy(model, MemoryPolicy(checkpoint=True))

    def accumulate(policy):
        model.zero_grad(set_to_none=True)
        for scale in (1.0, 0.5, 2.0):
            out = policy.run_backbone(model, frames * scale)
            (out * out).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    want = accumulate(MemoryPolicy(checkpoint=True))
    policy = graphed(warmup=0, checkpoint=True)
    apply_memory_policy(model, policy)
    got = accumulate(policy)
    assert set(got) == set(want) and policy.graphs.backend.captures == 1
    for name in want:
        close(got[name], want[name], name)


def test_new_inputs_capture_anew_and_the_oldest_graphs_go(replays):
    model = model_()
    policy = graphed(warmup=0, max_graphs=2, checkpoint=True)
    apply_memory_policy(model, policy)
    for videos in (1, 2, 3, 1):
        step(model, policy, frames_(videos))
    assert policy.graphs.backend.captures == 4 and len(policy.graphs) == 2  # the 1-video graphs went, came back
    with torch.no_grad():
        policy.run_backbone(model, frames_(1))  # nothing recorded: eager, no capture
    model.eval()
    step(model, policy, frames_(1))  # another mode: another capture
    assert policy.graphs.backend.captures == 5 and replays[0] == 5


def test_moved_weights_are_captured_again():
    model, frames = model_(), frames_()
    policy = graphed(warmup=0)
    apply_memory_policy(model, policy)
    step(model, policy, frames)
    frozen = next(p for p in model.blocks[0].parameters() if not p.requires_grad)
    frozen.data = frozen.data.clone()  # another address: the old graphs would read the old one
    step(model, policy, frames)
    assert policy.graphs.backend.captures == 2 and len(policy.graphs) == 1  # the stale graphs went


def test_changed_plans_capture_again_and_drop_the_stale_graphs():
    """The planner re-plans (the optimizer's state appeared): the same input with other plans is captured anew
    and the graphs of the old plans go (they would hold their pool and host buffers for nothing); the graphs of
    another input stay."""
    model = model_()
    policy = graphed(warmup=0, max_graphs=3, checkpoint=True)  # room for all three: none goes for lack of it
    apply_memory_policy(model, policy)
    graphs, blocks = policy.graphs, list(model.blocks)
    tokens = [torch.randn(n, 8, 16, dtype=torch.float64, requires_grad=True) for n in (4, 6)]

    def run(x, plans):
        out = graphs.run(blocks, x, (2, 2), policy.run_block, signature=plans)
        out.sum().backward()

    run(tokens[0], "plans A")
    run(tokens[1], "plans A")
    run(tokens[0], "plans B")
    assert graphs.backend.captures == 3 and len(graphs) == 2
    assert sorted((k[0][3], k[0][4][0]) for k in graphs._captured) == [("plans A", 6), ("plans B", 4)]


def test_stale_graphs_go_before_the_new_plans_warm_up():
    """After a re-plan the new plans run eagerly for ``warmup`` calls before their capture; the old plans' graphs
    (their pool: on g, as much memory as the budget's blocks) go at the first of those calls, not at the capture,
    so that the eager calls do not run beside them. The eager call computes what the graphs did."""
    model = model_()
    policy = graphed(warmup=2, checkpoint=True)
    apply_memory_policy(model, policy)
    graphs, blocks = policy.graphs, list(model.blocks)
    x = torch.randn(4, 8, 16, dtype=torch.float64, requires_grad=True)

    def run(plans):
        x.grad = None
        out = graphs.run(blocks, x, (2, 2), policy.run_block, signature=plans)
        out.sum().backward()
        return out.detach().clone(), x.grad.clone()

    for _ in range(3):
        replayed = run("plans A")
    assert graphs.backend.captures == 1 and len(graphs) == 1
    eager = run("plans B")  # the first call with the new plans: eager
    assert graphs.backend.captures == 1 and len(graphs) == 0
    for got, want, what in zip(eager, replayed, ("output", "input gradient")):
        close(got, want, what)  # no drop path here: eager and graphs draw nothing


def test_held_bytes_are_the_static_buffers_and_gradient_buffers_of_each_input():
    """What the captured graphs keep allocated between replays (the memory budget leaves it out of the memory in
    use): per input, static input, output and incoming gradient, and one gradient buffer per trained
    parameter of the blocks (here the embedding is frozen: no input gradient)."""
    model = model_()
    policy = graphed(warmup=0, max_graphs=2, checkpoint=True)
    apply_memory_policy(model, policy)
    assert policy.graphs.held_bytes() == 0
    trained = sum(p.numel() for b in model.blocks for p in b.parameters() if p.requires_grad) * 8  # float64
    total = 0
    for videos in (2, 1):
        step(model, policy, frames_(videos))
        total += 3 * (2 * videos * 8 * 16 * 8) + trained  # [2 * videos clips, 8 tokens, 16] float64, thrice
        assert policy.graphs.held_bytes() == total


def test_a_failed_capture_names_the_key():
    class Broken(EmulatedGraphBackend):
        def capture(self, *args):
            raise RuntimeError("operation not permitted when stream is capturing")

    model = model_()
    policy = MemoryPolicy(cuda_graphs=True, graphs=BlockGraphs(warmup=0, backend=Broken()))
    apply_memory_policy(model, policy)
    with pytest.raises(RuntimeError, match="cuda_graphs=False.*|not permitted") as error:
        step(model, policy, frames_())
    assert "cuda_graphs=False" in str(error.value) and "not permitted" in str(error.value)


def test_on_the_cpu_the_real_backend_stays_eager():
    model, frames = model_(), frames_()
    apply_memory_policy(model, MemoryPolicy(checkpoint=True))
    want = step(model, MemoryPolicy(checkpoint=True), frames)
    policy = MemoryPolicy(checkpoint=True, cuda_graphs=True)
    apply_memory_policy(model, policy)
    for _ in range(3):
        same(step(model, policy, frames), want)
    assert len(policy.graphs) == 0


def test_temporal_checkpointing_is_refused():
    with pytest.raises(ValueError, match="temporal checkpointing"):
        MemoryPolicy(cuda_graphs=True, temporal_chunks=2)
    with pytest.raises(ConfigError, match="backbone custom: .*cuda_graphs"):
        WrapperOptions.from_mapping(dict(cuda_graphs=True, temporal_checkpointing=True,
                                         temporal_checkpointing_chunk_num=2, temporal_checkpointing_chunk_dim=0))


def test_offloading_settings_are_accepted():
    """Offloading is captured (graph_offload): the fixed settings, a budget and an offloading plan all take graphs."""
    for options in (dict(offload_activations=True), dict(offload_activations=True, memory_budget_gib=4),
                    dict(memory_budget_gib=4, memory_plan="checkpoint+offload")):
        assert isinstance(MemoryPolicy(cuda_graphs=True, **options).graphs, BlockGraphs)
    assert WrapperOptions.from_mapping(dict(cuda_graphs=True, offload_activations=True)).memory_policy(
        torch.nn.Module()).cuda_graphs


def test_bad_cache_sizes_are_refused():
    for bad in (dict(warmup=-1), dict(max_graphs=0)):
        with pytest.raises(ValueError, match="BlockGraphs"):
            BlockGraphs(**bad)




def test_a_backward_captured_inside_an_offloading_forward_keeps_its_saved_tensors():
    """The fixed settings offload around the whole backbone, and capture runs inside that forward: the captured
    backward's chunked recomputation must save in place (as an eager backward, outside the context, does), not
    through the open offloading context (which records host copies into the graph). So the capturing call offloads
    exactly what a replayed call does (what is saved outside the blocks), less than an eager call."""
    from opentad.models.memory.offload import OffloadSavedTensors

    model = model_()
    policy = graphed(checkpoint=True, backward_chunks=2, offload_activations=True)
    apply_memory_policy(model, policy)
    counts = []
    for k in range(3):  # eager, capture, replay
        with OffloadSavedTensors(min_bytes=0, force=True) as outer:
            out = policy.run_backbone(model, frames_() * (1 + k))
        out.float().sum().backward()
        counts.append(outer.offloaded_tensors)
    assert policy.graphs.backend.captures == 1
    assert counts[1] == counts[2] < counts[0], counts
