"""CUDA graphs of the blocks on CUDA: replayed steps against the same steps run eagerly, and capture while a
pinning DataLoader's thread works. Skipped without CUDA."""
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from opentad.models.memory import cuda_graphs as graphs_module
from opentad.models.backbones.vit_adapter import VisionTransformerAdapter
from opentad.models.memory.cuda_graphs import BlockGraphs, CudaGraphBackend
from opentad.utils.memory import pool_reserved
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from tests.models.memory.graph_cases import drawing_like, emulated_step, frames_, model_, other_states, step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("offload", [False, True], ids=["on-device", "offloaded"])
@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "bf16"])
@pytest.mark.parametrize("drop_path", [0.0, 0.5])
def test_cuda_graphs_replay_the_eager_step(drop_path, autocast, offload):
    """On CUDA: after capture, with other frames and weights at every step, a replayed step's gradients are those of the same step run eagerly through the
    emulating backend from the same generator states (float32, and bf16 autocast with the bf16 token stream);
    in float32 also those of an eager step without recomputation drawing the same numbers.

    Error model: the replayed kernels are the eager ones on the same shapes; what may differ is the choice of
    algorithm (cuBLAS, cuDNN's TF32 convolutions, the attention backward's accumulation order) between runs: a
    few roundings of the largest value, allowed 8 units of the compute dtype's precision of it (64 against the
    run without recomputation, whose products have other shapes). Other drop-path draws move this tiny model's
    gradients by about 2.5% of their largest value: far beyond 8 float32 units, within 8 bf16 units (6%), so
    the draws are checked in float32; the bf16 case checks capture and replay under autocast. Offloaded: what
    the blocks save goes to host buffers and back on a side stream inside the graphs (every tensor staged here).
    """
    model = model_(drop_path).float().cuda()
    frames = frames_().float().cuda()
    options = dict(checkpoint=True, backward_chunks=2, frozen_dtype=torch.bfloat16 if autocast else None,
                   offload_activations=offload)
    policy = MemoryPolicy(cuda_graphs=True, graphs=BlockGraphs(warmup=1, backend=CudaGraphBackend(min_bytes=0)),
                          **options)
    apply_memory_policy(model, policy)
    steps = []
    for k, seed in enumerate((5, 6, 7)):  # other frames and weights at every step: a stale replay would show
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.mul_(1 + 0.01 * k)
        steps.append(step(model, policy, frames * (1 + 0.25 * k), seed=seed, autocast=autocast))
    frames = frames * 1.5
    (captured,) = policy.graphs._captured.values()
    assert type(policy.graphs.backend) is graphs_module.CudaGraphBackend
    assert (len(captured.offload.layouts) >= 5) == offload  # 3 blocks' inputs, 2 or 3 adapters' inputs
    states = dict(captured.states)
    eps = torch.finfo(torch.bfloat16 if autocast else torch.float32).eps
    grads = steps[-1][1]

    def differs(other, units):
        return {n for n, v in other.items() if float((grads[n] - v).abs().max()) > units * eps * max(
            float(v.abs().max()), 1e-6)}

    same = emulated_step(model, frames, states, 7, autocast, **options)[1]
    assert set(same) == set(grads) and grads and not differs(same, 8)
    if not autocast:
        assert not differs(drawing_like(model, frames, states, seed=7)[1], 64)
    if drop_path and not autocast:  # the draws matter: from other states some gradient differs beyond 8 units
        assert differs(emulated_step(model, frames, other_states(states, "cuda"), 7, autocast, **options)[1], 8)


def test_capture_while_a_pinning_loader_works():
    """A DataLoader's pin-memory thread makes CUDA calls while the blocks are captured (training captures in the
    middle of an epoch); the capture must not fail for it (``capture_error_mode="thread_local"``)."""
    model = model_().float().cuda()
    policy = MemoryPolicy(checkpoint=True, cuda_graphs=True, graphs=BlockGraphs(warmup=1))
    apply_memory_policy(model, policy)
    loader = DataLoader(TensorDataset(torch.randn(256, 4096)), batch_size=8, num_workers=2, pin_memory=True)
    batches = iter(loader)
    for _ in range(4):
        next(batches)  # the pin thread keeps pinning the next batches meanwhile
        step(model, policy, frames_().float().cuda())
    assert len(policy.graphs) == 1


def _pool_bytes(captured) -> int:
    """Bytes the memory pool of ``captured``'s graphs reserves."""
    name = f"private {tuple(captured.keep[0].pool())}"
    snapshot = torch.cuda.memory._snapshot()
    return sum(held for pool, held, _ in pool_reserved(snapshot, device=torch.cuda.current_device()) if pool == name)


@pytest.mark.parametrize("plan", [dict(checkpoint=True, offload_activations=True),
                                  dict(memory_budget_gib=60, memory_plan="checkpoint+offload")],
                         ids=["fixed", "budget-plan"])
def test_offloading_keeps_the_saved_inputs_out_of_the_graphs_pool(plan):
    """8 checkpointed blocks, each input 8 MiB: without offloading the graphs' pool holds all 8 inputs between
    forward and backward; with it, at most the ``_LAG`` = 2 in flight and the one being computed, plus the copy
    fetched back. Error model: both pools hold the same working memory of one block; pools grow in segments of
    up to 20 MiB, so the difference must be at least 3 of the 5 inputs' worth that offloading keeps out."""
    torch.manual_seed(0)
    clips, videos = 64, 16
    shape = dict(img_size=64, patch_size=16, embed_dims=256, depth=8, num_heads=4, num_frames=16)
    input_bytes = clips * (16 // 2) * (64 // 16) ** 2 * 256 * 4
    frames = torch.randn(clips, 3, 16, 64, 64, device="cuda")
    grown = {}
    for offload in (False, True):
        model = VisionTransformerAdapter(**shape, total_frames=16 * clips // videos, adapter_index=list(range(8)),
                                         return_feat_map=True).cuda()
        options = plan if offload else dict(checkpoint=True)
        policy = MemoryPolicy(cuda_graphs=True, graphs=BlockGraphs(warmup=1), **options)
        apply_memory_policy(model, policy)
        for seed in (5, 6, 7):
            step(model, policy, frames, seed=seed)
        torch.cuda.synchronize()
        (captured,) = policy.graphs._captured.values()
        assert len(captured.offload.layouts) == (8 if offload else 0)
        grown[offload] = _pool_bytes(captured)
    assert input_bytes == 8 * 2**20
    assert grown[False] - grown[True] >= 3 * input_bytes, grown
