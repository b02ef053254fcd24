"""CUDA graphs of the blocks (``cuda_graphs``): what surrounds the graphs, on the CPU through the emulating
backend (each "replay" runs the captured function into the same static buffers), and the real graphs on CUDA.

Error model (float64, CPU): a graphed step computes the same products as the eager one, in the same order
(the emulating backend runs the same code); recomputation only reorders nothing. The comparisons allow
``n * eps * 10**3`` of the largest value (n = 10**3 terms), as tests/models/memory/test_policy.py does; a
wrong mask, a stale input or a missing gradient path shows at the size of the values themselves.
"""
import pytest
import torch

from opentad.models.backbones.vit_adapter import VisionTransformerAdapter
from opentad.models.backbones.wrapper_options import WrapperOptions
from opentad.models.memory import cuda_graphs as graphs_module
from opentad.models.memory.cuda_graphs import BlockGraphs, EmulatedGraphBackend, _Replay
from opentad.models.memory.graph_rng import bound_generator
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from opentad.utils.config import ConfigError
from tests.models.memory.tiny_qlora import tiny_qlora_vit

EPS64 = torch.finfo(torch.float64).eps
TINY = dict(img_size=32, patch_size=16, embed_dims=16, depth=3, num_heads=2, num_frames=4, return_feat_map=True)


def _model(drop_path: float = 0.0) -> VisionTransformerAdapter:
    torch.manual_seed(0)
    model = VisionTransformerAdapter(**TINY, total_frames=8, adapter_index=[0, 1, 2], drop_path_rate=drop_path)
    model = model.double().train()
    with torch.no_grad():  # adapters start as the identity: give every trainable value a gradient path
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def _frames(videos: int = 2) -> torch.Tensor:
    return torch.randn(2 * videos, 3, 4, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def _step(model, policy: MemoryPolicy, frames: torch.Tensor, seed: int = 5, autocast: bool = False):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    with torch.autocast(frames.device.type, dtype=torch.bfloat16, enabled=autocast):
        out = policy.run_backbone(model, frames).float()
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).view_as(out)).sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _graphed(warmup: int = 1, max_graphs: int = 2, **options) -> MemoryPolicy:
    return MemoryPolicy(cuda_graphs=True, graphs=BlockGraphs(warmup=warmup, max_graphs=max_graphs,
                                                             backend=EmulatedGraphBackend()), **options)


def _close(got, want, what):
    tol = 1e3 * EPS64 * 1e3 * max(float(want.abs().max()), 1e-3)
    assert float((got - want).abs().max()) <= tol, what


def _same(a, b):
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    assert set(grads_a) == set(grads_b) and grads_a
    _close(loss_a, loss_b, "loss")
    for name in grads_b:
        _close(grads_a[name], grads_b[name], name)


@pytest.fixture
def replays(monkeypatch):
    """How many steps ran through the captured graphs."""
    count = [0]
    real = _Replay.apply

    def spy(*args):
        count[0] += 1
        return real(*args)

    monkeypatch.setattr(_Replay, "apply", spy)
    return count


@pytest.mark.parametrize("options", [dict(), dict(checkpoint=True), dict(checkpoint=True, backward_chunks=2)],
                         ids=["keep", "checkpoint", "chunked"])
def test_graphed_steps_give_the_eager_loss_and_gradients(options, replays):
    model, frames = _model(), _frames()
    apply_memory_policy(model, MemoryPolicy(**options))
    want = _step(model, MemoryPolicy(**options), frames)
    policy = _graphed(**options)
    apply_memory_policy(model, policy)
    for step in range(3):  # one eager warm-up step, then capture and two replays
        _same(_step(model, policy, frames), want)
    assert policy.graphs.backend.captures == 1 and replays[0] == 2 and len(policy.graphs) == 1


def _drawing_like(model, frames, states, seed: int, autocast: bool = False):
    """An eager step without recomputation in which each module with a state in ``states`` (``{id(module):
    generator state}``: blocks, adapters) draws its random numbers from a generator in that state."""
    plain = MemoryPolicy(frozen_dtype=torch.bfloat16 if autocast else None)
    apply_memory_policy(model, plain)
    owners = [m for m in model.modules() if id(m) in states]
    assert len(owners) == len(states)
    for owner in owners:
        generator = torch.Generator(frames.device)
        generator.set_state(states[id(owner)])
        owner.forward = bound_generator(type(owner).forward.__get__(owner), generator)
    try:
        return _step(model, plain, frames, seed=seed, autocast=autocast)
    finally:
        for owner in owners:
            del owner.forward


def _other(states, device="cpu"):
    return {k: torch.Generator(device).manual_seed(123 + i).get_state() for i, k in enumerate(states)}


def test_recomputation_draws_what_the_forward_drew():
    """Stochastic depth in checkpointed blocks: the replayed backward recomputes each block with its generator
    set back, so the gradients are those of an eager run without recomputation drawing the same numbers."""
    model, frames = _model(drop_path=0.5), _frames()
    policy = _graphed(checkpoint=True)
    apply_memory_policy(model, policy)
    _step(model, policy, frames)  # warm-up
    got = _step(model, policy, frames, seed=7)
    (captured,) = policy.graphs._captured.values()
    states = {id(b): captured.states[id(b)] for b in model.blocks}  # a checkpointed block's adapter: the block's
    _same(got, _drawing_like(model, frames, states, seed=7))
    assert not torch.equal(_drawing_like(model, frames, _other(states), seed=7)[0], got[0])


def test_chunked_recomputation_of_lora_dropout_draws_what_the_forward_drew():
    """The QLoRA adapters' LoRA dropout, with the chunked backward: the adapter's checkpoint draws from the
    adapter's generator, set back before the recomputation."""
    model = tiny_qlora_vit().double()
    frames = _frames()
    policy = _graphed(checkpoint=True, backward_chunks=2)
    apply_memory_policy(model, policy)
    _step(model, policy, frames)
    got = _step(model, policy, frames, seed=7)
    (captured,) = policy.graphs._captured.values()
    adapters = {id(b.adapter) for b in model.blocks if b.adapter is not None}
    assert adapters and adapters <= set(captured.states)
    _same(got, _drawing_like(model, frames, captured.states, seed=7))
    assert not torch.equal(_drawing_like(model, frames, _other(captured.states), seed=7)[0], got[0])


def test_a_second_forward_before_backward_runs_eagerly(replays):
    model, frames = _model(), _frames()
    apply_memory_policy(model, MemoryPolicy(checkpoint=True))

    def two_forwards(policy):
        model.zero_grad(set_to_none=True)
        outs = [policy.run_backbone(model, frames * s) for s in (1.0, 0.5)]
        sum((o * o).sum() for o in outs).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    want = two_forwards(MemoryPolicy(checkpoint=True))
    policy = _graphed(warmup=0, checkpoint=True)
    apply_memory_policy(model, policy)
    for _ in range(2):
        got = two_forwards(policy)
        assert set(got) == set(want)
        for name in want:
            _close(got[name], want[name], name)
    assert replays[0] == 2  # one graphed forward per step; the second ran eagerly


def test_gradients_accumulate_over_steps_without_zeroing():
    """Two graphed steps without ``zero_grad`` sum their gradients as eager ones do (a replay must not write
    into a gradient that autograd already holds)."""
    model, frames = _model(), _frames()
    apply_memory_policy(model, MemoryPolicy(checkpoint=True))

    def accumulate(policy):
        model.zero_grad(set_to_none=True)
        for scale in (1.0, 0.5, 2.0):
            out = policy.run_backbone(model, frames * scale)
            (out * out).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    want = accumulate(MemoryPolicy(checkpoint=True))
    policy = _graphed(warmup=0, checkpoint=True)
    apply_memory_policy(model, policy)
    got = accumulate(policy)
    assert set(got) == set(want) and policy.graphs.backend.captures == 1
    for name in want:
        _close(got[name], want[name], name)


def test_new_inputs_capture_anew_and_the_oldest_graphs_go(replays):
    model = _model()
    policy = _graphed(warmup=0, max_graphs=2, checkpoint=True)
    apply_memory_policy(model, policy)
    for videos in (1, 2, 3, 1):
        _step(model, policy, _frames(videos))
    assert policy.graphs.backend.captures == 4 and len(policy.graphs) == 2  # the 1-video graphs went, came back
    with torch.no_grad():
        policy.run_backbone(model, _frames(1))  # nothing recorded: eager, no capture
    model.eval()
    _step(model, policy, _frames(1))  # another mode: another capture
    assert policy.graphs.backend.captures == 5 and replays[0] == 5


def test_moved_weights_are_captured_again():
    model, frames = _model(), _frames()
    policy = _graphed(warmup=0)
    apply_memory_policy(model, policy)
    _step(model, policy, frames)
    frozen = next(p for p in model.blocks[0].parameters() if not p.requires_grad)
    frozen.data = frozen.data.clone()  # another address: the old graphs would read the old one
    _step(model, policy, frames)
    assert policy.graphs.backend.captures == 2 and len(policy.graphs) == 1  # the stale graphs went


def test_a_failed_capture_names_the_key():
    class Broken(EmulatedGraphBackend):
        def capture(self, *args):
            raise RuntimeError("operation not permitted when stream is capturing")

    model = _model()
    policy = MemoryPolicy(cuda_graphs=True, graphs=BlockGraphs(warmup=0, backend=Broken()))
    apply_memory_policy(model, policy)
    with pytest.raises(RuntimeError, match="cuda_graphs=False.*|not permitted") as error:
        _step(model, policy, _frames())
    assert "cuda_graphs=False" in str(error.value) and "not permitted" in str(error.value)


def test_on_the_cpu_the_real_backend_stays_eager():
    model, frames = _model(), _frames()
    apply_memory_policy(model, MemoryPolicy(checkpoint=True))
    want = _step(model, MemoryPolicy(checkpoint=True), frames)
    policy = MemoryPolicy(checkpoint=True, cuda_graphs=True)
    apply_memory_policy(model, policy)
    for _ in range(3):
        _same(_step(model, policy, frames), want)
    assert len(policy.graphs) == 0


@pytest.mark.parametrize("options, clash", [
    (dict(offload_activations=True), "offload_activations"),
    (dict(temporal_chunks=2), "temporal checkpointing"),
    (dict(memory_budget_gib=4, memory_plan="checkpoint+offload"), "memory_plan"),
])
def test_what_cannot_be_captured_is_refused(options, clash):
    with pytest.raises(ValueError, match=clash):
        MemoryPolicy(cuda_graphs=True, **options)
    with pytest.raises(ConfigError, match="backbone custom: .*cuda_graphs"):
        WrapperOptions.from_mapping(dict(cuda_graphs=True, **{
            "offload_activations": dict(offload_activations=True),
            "temporal checkpointing": dict(temporal_checkpointing=True, temporal_checkpointing_chunk_num=2,
                                           temporal_checkpointing_chunk_dim=0),
            "memory_plan": dict(memory_budget_gib=4, memory_plan="checkpoint+offload"),
        }[clash]))


def test_with_a_budget_the_planner_does_not_offload():
    policy = MemoryPolicy(cuda_graphs=True, offload_activations=True, memory_budget_gib=4)
    assert policy.planner.offload_allowed is False and isinstance(policy.graphs, BlockGraphs)
    plain = MemoryPolicy(offload_activations=True, memory_budget_gib=4)
    assert plain.planner.offload_allowed is True and plain.graphs is None
    assert WrapperOptions.from_mapping(dict(cuda_graphs=True)).memory_policy(torch.nn.Module()).cuda_graphs


def test_bad_cache_sizes_are_refused():
    for bad in (dict(warmup=-1), dict(max_graphs=0)):
        with pytest.raises(ValueError, match="BlockGraphs"):
            BlockGraphs(**bad)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _emulated_step(model, frames, states, seed: int, autocast: bool, **options):
    """One step of ``options`` through the emulating backend, its generators set to ``states`` first."""
    policy = MemoryPolicy(cuda_graphs=True, graphs=BlockGraphs(warmup=0, backend=EmulatedGraphBackend()), **options)
    apply_memory_policy(model, policy)
    _step(model, policy, frames, seed=seed, autocast=autocast)  # captures
    (captured,) = policy.graphs._captured.values()
    for owner, generator in captured.generators.items():
        generator.set_state(states[owner])
    return _step(model, policy, frames, seed=seed, autocast=autocast)


@cuda
@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "bf16"])
@pytest.mark.parametrize("drop_path", [0.0, 0.5])
def test_cuda_graphs_replay_the_eager_step(drop_path, autocast):
    """On CUDA: after capture, a replayed step's gradients are those of the same step run eagerly through the
    emulating backend from the same generator states (float32, and bf16 autocast with the bf16 token stream);
    in float32 also those of an eager step without recomputation drawing the same numbers.

    Error model: the replayed kernels are the eager ones on the same shapes; what may differ is the choice of
    algorithm (cuBLAS, cuDNN's TF32 convolutions, the attention backward's accumulation order) between runs: a
    few roundings of the largest value, allowed 8 units of the compute dtype's precision of it (64 against the
    run without recomputation, whose products have other shapes). Other drop-path draws move this tiny model's
    gradients by about 2.5% of their largest value: far beyond 8 float32 units, within 8 bf16 units (6%), so
    the draws are checked in float32; the bf16 case checks capture and replay under autocast.
    """
    model = _model(drop_path).float().cuda()
    frames = _frames().float().cuda()
    options = dict(checkpoint=True, backward_chunks=2, frozen_dtype=torch.bfloat16 if autocast else None)
    policy = MemoryPolicy(cuda_graphs=True, graphs=BlockGraphs(warmup=1), **options)
    apply_memory_policy(model, policy)
    steps = [_step(model, policy, frames, seed=s, autocast=autocast) for s in (5, 6, 7)]
    (captured,) = policy.graphs._captured.values()
    assert type(policy.graphs.backend) is graphs_module.CudaGraphBackend
    states = dict(captured.states)
    eps = torch.finfo(torch.bfloat16 if autocast else torch.float32).eps
    grads = steps[-1][1]

    def differs(other, units):
        return {n for n, v in other.items() if float((grads[n] - v).abs().max()) > units * eps * max(
            float(v.abs().max()), 1e-6)}

    same = _emulated_step(model, frames, states, 7, autocast, **options)[1]
    assert set(same) == set(grads) and grads and not differs(same, 8)
    if not autocast:
        assert not differs(_drawing_like(model, frames, states, seed=7)[1], 64)
    if drop_path and not autocast:  # the draws matter: from other states some gradient differs beyond 8 units
        assert differs(_emulated_step(model, frames, _other(states, "cuda"), 7, autocast, **options)[1], 8)
