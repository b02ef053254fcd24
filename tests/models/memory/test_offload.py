"""Activation offloading: same gradients, and exactly the checkpointed inputs leave the device."""
import pytest
import torch
import torch.utils.checkpoint as cp
from torch import nn

from opentad.models.memory.offload import OffloadSavedTensors


class _Chain(nn.Module):
    """Blocks ``x + W2 gelu(W1 x)``, each checkpointed (non-reentrant) as the ViT blocks are."""

    def __init__(self, depth: int = 4, dims: int = 8, frozen: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(dims, 16), nn.GELU(), nn.Linear(16, dims)) for _ in range(depth))
        self.adapters = nn.ParameterList(nn.Parameter(torch.full((dims,), 0.5)) for _ in range(depth))
        if frozen:
            self.blocks.requires_grad_(False)

    def forward(self, x):
        for block, gamma in zip(self.blocks, self.adapters):
            x = cp.checkpoint(lambda t, b=block, g=gamma: t + g * b(t), x, use_reentrant=False)
        return x


def _grads(model, x, offload):
    model.zero_grad(set_to_none=True)
    if offload is None:
        out = model(x)
    else:
        with offload:
            out = model(x)
    (out.square().sum()).backward()
    return out.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]


def test_same_outputs_and_gradients_and_block_inputs_offloaded():
    torch.manual_seed(0)
    model = _Chain(depth=4)
    x = torch.randn(3, 5, 8)
    ref_out, ref_grads = _grads(model, x, None)
    offload = OffloadSavedTensors(min_bytes=0, force=True)
    out, grads = _grads(model, x, offload)
    assert torch.equal(out, ref_out)
    assert len(grads) == len(ref_grads) == 4
    for g, r in zip(grads, ref_grads):
        assert torch.equal(g, r)
    # one saved input per checkpointed block, nothing else (the blocks' own activations are recomputed)
    assert offload.offloaded_tensors == 4
    assert offload.offloaded_bytes == 4 * x.numel() * x.element_size()


def test_small_tensors_and_parameters_stay():
    model = _Chain(depth=3)
    x = torch.randn(2, 4, 8)
    offload = OffloadSavedTensors(min_bytes=x.numel() * x.element_size() + 1, force=True)
    _grads(model, x, offload)
    assert offload.offloaded_tensors == 0
    # a linear whose weight trains saves its input and its weight; only the input may move
    lin = nn.Linear(64, 64)
    big = torch.randn(32, 64, requires_grad=True)
    offload = OffloadSavedTensors(min_bytes=1, force=True)
    with offload:
        y = lin(big)
    y.sum().backward()
    assert offload.offloaded_tensors == 1  # the input; lin.weight (a Parameter) stays


def test_cpu_tensors_stay_without_force():
    model = _Chain(depth=2)
    offload = OffloadSavedTensors(min_bytes=0)
    _grads(model, torch.randn(2, 3, 8), offload)
    assert offload.offloaded_tensors == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_offload_frees_device_memory_and_matches():
    torch.manual_seed(0)
    model = _Chain(depth=6, dims=512).cuda()
    x = torch.randn(8, 1024, 512, device="cuda")
    ref_out, ref_grads = _grads(model, x, None)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    model.zero_grad(set_to_none=True)  # else the gradients below add to the reference's
    offload = OffloadSavedTensors()
    with offload:
        out = model(x)
    torch.cuda.synchronize()
    # memory used by a side stream is returned when the allocator next processes events (on an allocation)
    torch.empty(1, device="cuda")
    held = torch.cuda.memory_allocated() - before
    assert held < 3 * x.numel() * 4  # without offloading: 6 inputs + the output
    out.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert offload.offloaded_tensors == 6
    assert torch.equal(out.detach(), ref_out)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=0, atol=0)
