"""The tiny backbone, steps and references shared by the CUDA-graph tests (CPU and CUDA).

Error model of the float64 comparisons (:func:`close`): a graphed step computes the same products as the
eager one; what may differ is the order of float64 sums (recomputation in row groups, autograd's
accumulation of a gradient over uses), about 15 float64 units relative where measured. Allowed:
``n * eps * sum|terms|`` with ``n`` below 10**3 terms and ``sum|terms|`` below 10**3 times the largest value
compared, as tests/models/memory/test_policy.py does; a wrong mask, a stale input or weight, or a missing
gradient path shows at the size of the values themselves.
"""
import torch

from opentad.models.backbones.vit_adapter import VisionTransformerAdapter
from opentad.models.memory.cuda_graphs import BlockGraphs, EmulatedGraphBackend
from opentad.models.memory.graph_rng import bound_generator
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from tests.models.memory.tiny_qlora import perturbed

EPS64 = torch.finfo(torch.float64).eps
TINY = dict(img_size=32, patch_size=16, embed_dims=16, depth=3, num_heads=2, num_frames=4, return_feat_map=True)


def model_(drop_path: float = 0.0) -> VisionTransformerAdapter:
    """A 3-block adapter ViT in float64 from seed 0, every trainable value moved off the identity."""
    torch.manual_seed(0)
    model = VisionTransformerAdapter(**TINY, total_frames=8, adapter_index=[0, 1, 2], drop_path_rate=drop_path)
    return perturbed(model.double())


def frames_(videos: int = 2) -> torch.Tensor:
    return torch.randn(2 * videos, 3, 4, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def step(model, policy: MemoryPolicy, frames: torch.Tensor, seed: int = 5, autocast: bool = False):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    with torch.autocast(frames.device.type, dtype=torch.bfloat16, enabled=autocast):
        out = policy.run_backbone(model, frames).float()
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).view_as(out)).sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def graphed(warmup: int = 1, max_graphs: int = 2, **options) -> MemoryPolicy:
    return MemoryPolicy(cuda_graphs=True, graphs=BlockGraphs(warmup=warmup, max_graphs=max_graphs,
                                                             backend=EmulatedGraphBackend(min_bytes=0)), **options)


def close(got, want, what):
    tol = 1e3 * EPS64 * 1e3 * max(float(want.abs().max()), 1e-3)
    assert float((got - want).abs().max()) <= tol, what


def same(a, b):
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    assert set(grads_a) == set(grads_b) and grads_a
    close(loss_a, loss_b, "loss")
    for name in grads_b:
        close(grads_a[name], grads_b[name], name)


def drawing_like(model, frames, states, seed: int, autocast: bool = False):
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
        return step(model, plain, frames, seed=seed, autocast=autocast)
    finally:
        for owner in owners:
            del owner.forward


def other_states(states, device="cpu"):
    return {k: torch.Generator(device).manual_seed(123 + i).get_state() for i, k in enumerate(states)}


def emulated_step(model, frames, states, seed: int, autocast: bool, **options):
    """One step of ``options`` through the emulating backend, its generators set to ``states`` first."""
    policy = MemoryPolicy(cuda_graphs=True, graphs=BlockGraphs(warmup=0, backend=EmulatedGraphBackend(min_bytes=0)), **options)
    apply_memory_policy(model, policy)
    step(model, policy, frames, seed=seed, autocast=autocast)  # captures
    (captured,) = policy.graphs._captured.values()
    for owner, generator in captured.generators.items():
        generator.set_state(states[owner])
    return step(model, policy, frames, seed=seed, autocast=autocast)
