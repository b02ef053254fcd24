"""Two Gloo processes train a QLoRA backbone under DDP (static graph, non-reentrant
checkpointing; also with the chunked backward of the g and H configs): each rank
quantizes its own copy, LoRA weights stay identical across ranks, quantized bytes
never change."""
import dataclasses
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from opentad.models.backbones.vit_adapter_qlora import VisionTransformerQLoRA
from opentad.models.memory.chunked_residual import ChunkedResidualFunction
from opentad.models.memory.policy import apply_memory_policy
from opentad.models.bricks.quant_io import export_quantized
from opentad.models.utils.qlora import quantized_modules

TINY = dict(
    img_size=32, patch_size=16, embed_dims=64, depth=2, num_heads=2, mlp_ratio=2.0, num_frames=4,
    total_frames=8, adapter_index=[0, 1], return_feat_map=True, with_cp=True,
    lora_r=4, lora_alpha=8, lora_dropout=0.0, quantize_backbone=True, backbone_lora_targets=["qkv"],
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out_dir, variants):
    """One rank: each ``chunks`` of ``variants`` in turn, in one process group (one spawn for all variants)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    for chunks in variants:
        _train_and_save(rank, out_dir, chunks)
        dist.barrier()  # both ranks done with this variant's DDP before the next one is built
    dist.destroy_process_group()


def _train_and_save(rank, out_dir, chunks):
    """3 DDP steps of the tiny QLoRA ViT (``backward_chunks=chunks``); saves ``rank{rank}_chunks{chunks}.pt``."""
    torch.manual_seed(0)  # every rank builds and quantizes the same model itself
    # chunked: frozen attention/MLP (no LoRA in the ViT) recomputed 2 row groups at a time (custom.backward_chunks)
    model = VisionTransformerQLoRA(**dict(TINY, backbone_lora_targets=[] if chunks > 1 else ["qkv"]))
    apply_memory_policy(model, dataclasses.replace(model.memory_policy, backward_chunks=chunks))
    model.on_weights_loaded()
    model.freeze()
    before = {n: export_quantized(m)["weight"].clone() for n, m in quantized_modules(model).items()}
    # this process's own class: count the chunked backward passes
    calls, original = [], ChunkedResidualFunction.__dict__["backward"]
    ChunkedResidualFunction.backward = staticmethod(lambda ctx, *grads: calls.append(1) or original(ctx, *grads))
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(model, static_graph=True)
        optim = torch.optim.AdamW([p for p in ddp.parameters() if p.requires_grad], lr=1e-2)
        data = torch.Generator().manual_seed(100 + rank)  # different data on each rank
        for _ in range(3):
            optim.zero_grad()
            out = ddp(torch.randn(2, 3, 4, 32, 32, generator=data))
            out.square().mean().backward()
            optim.step()
    finally:  # the next variant counts its own calls
        ChunkedResidualFunction.backward = original
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    after = {n: export_quantized(m)["weight"] for n, m in quantized_modules(model).items()}
    torch.save(
        dict(trainable=trainable, bytes_unchanged=all(torch.equal(before[n], after[n]) for n in before),
             chunked_calls=len(calls)),
        os.path.join(out_dir, f"rank{rank}_chunks{chunks}.pt"),
    )


VARIANTS = (1, 2)


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    """The folder of both ranks' results of every variant: one spawn of two processes (each pays the torch and
    bitsandbytes imports once) runs the variants one after the other."""
    folder = tmp_path_factory.mktemp("qlora_ddp")
    mp.start_processes(_worker, args=(2, _free_port(), str(folder), VARIANTS), nprocs=2, join=True,
                       start_method="spawn")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("chunks", VARIANTS, ids=["checkpointed", "chunked_backward"])
def test_two_process_ddp_step_keeps_ranks_identical(ddp_results, chunks):
    r0 = torch.load(ddp_results / f"rank0_chunks{chunks}.pt", weights_only=True)
    r1 = torch.load(ddp_results / f"rank1_chunks{chunks}.pt", weights_only=True)
    assert r0["bytes_unchanged"] and r1["bytes_unchanged"]
    # the second block's input needs a gradient: its chunked backward runs at each of the 3 steps (the first
    # block's input does not, so its attention and MLP are not recomputed)
    assert r0["chunked_calls"] == r1["chunked_calls"] == (3 if chunks > 1 else 0)
    assert r0["trainable"].keys() == r1["trainable"].keys()
    lora = [n for n in r0["trainable"] if "lora_" in n]
    # 2 adapters x 2 projections x (a, b), + 2 blocks x qkv (a, b) without chunking
    assert len(lora) == 2 * 2 * 2 + (2 * 2 if chunks == 1 else 0)
    for name, tensor in r0["trainable"].items():
        assert torch.equal(tensor, r1["trainable"][name]), name
    # and training moved every one of them (lora_b starts at zero; the first block's get their gradient through
    # the second block's backward)
    moved = {n: bool(r0["trainable"][n].abs().sum() > 0) for n in lora if n.endswith("lora_b.weight")}
    assert all(moved.values()), moved
