"""Staged offloading on CUDA with every copy delayed: the waits between the copy stream and the compute stream are
what makes the values right (a missing one gives other gradients). Skipped without CUDA."""
import pytest
import torch

from opentad.models.memory.graph_offload import GraphOffload

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


class _Delayed(GraphOffload):
    """Queues a sleep kernel (tens of milliseconds) on the side stream before each copy to or from the host."""

    def _side(self, device):
        side = super()._side(device)
        with torch.cuda.stream(side):
            torch.cuda._sleep(50_000_000)
        return side


def _chain(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    h = x + 0.0  # not a leaf: once staged, nothing else holds it
    for _ in range(5):  # each product saves its input (for w's gradient): 5 staged tensors, released 2 behind,
        h = h * w  # while the next products allocate tensors of their size on the compute stream
    return h.sum()


def _loss(offload: GraphOffload, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    with offload.block(True):
        return _chain(x, w)


def test_delayed_copies_are_waited_for():
    """During the staged forward (and after it) new tensors are written on the compute stream, into memory freed
    meanwhile: had a staged tensor's memory been released before its delayed copy to the host, the host would
    hold those values; had the backward used a tensor before its delayed copy back, it would read uninitialised
    memory. The same elementwise products, so the gradients must equal the plain ones exactly."""
    device = torch.device("cuda")
    g = torch.Generator(device).manual_seed(0)
    x = torch.randn(512, 1024, device=device, generator=g, requires_grad=True)  # 2 MiB
    w = torch.nn.Parameter(torch.randn(512, 1024, device=device, generator=g))
    want = torch.autograd.grad(_chain(x, w), (x, w))
    offload = _Delayed(min_bytes=0)
    with offload.active("measure"):
        loss = _loss(offload, x, w)
    torch.autograd.grad(loss, (x, w))
    offload.allocate(device)
    assert len(offload.layouts) == 5
    with offload.active("capture"):
        loss = _loss(offload, x, w)
    junk = [torch.full_like(x, 1e6) for _ in range(4)]  # on the compute stream, into any memory freed early
    got = torch.autograd.grad(loss, (x, w))
    del junk
    assert all(torch.equal(a, b) for a, b in zip(got, want))
