"""Staged offloading for CUDA graphs (:mod:`opentad.models.memory.graph_offload`), on the CPU (``force``: host
buffers are CPU tensors, copies synchronous). The staged values are copies, so results are compared exactly."""
import pytest
import torch

from opentad.models.memory.graph_offload import GraphOffload, staging


def _forward(offload: GraphOffload, x: torch.Tensor, w: torch.Tensor, wanted: bool = True) -> torch.Tensor:
    """``((x * w) * w).sum()`` with the two products' saved inputs passing through ``offload``'s hooks."""
    with offload.block(wanted):
        y = x * w  # saves x (for w's gradient) and w (a parameter: stays)
        z = y * w  # saves y
    return z.sum()


def _grads(x, w, loss):
    return torch.autograd.grad(loss, (x, w))


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64).requires_grad_(True)
    w = torch.nn.Parameter(torch.randn(6, 5, generator=g, dtype=torch.float64))
    return x, w


def test_measured_then_staged_gives_the_plain_gradients():
    x, w = _inputs()
    want = _grads(x, w, ((x * w) * w).sum())
    offload = GraphOffload(min_bytes=0, force=True)
    assert staging() is None
    with offload.active("measure"):
        assert staging() is offload
        loss = _forward(offload, x, w)
    assert staging() is None
    assert offload.layouts == [(x.shape, x.dtype), (x.shape, x.dtype)]  # x and y, in saving order; w stays
    assert offload.staged_bytes == 2 * x.numel() * 8
    assert offload._eager.offloaded_tensors == 2  # the warm-up offloads them (eagerly) too
    assert all(torch.equal(a, b) for a, b in zip(_grads(x, w, loss), want))
    offload.allocate(x.device)
    for k in range(2):  # buffers reused by a second "replay", with other values
        xk = (x.detach() * (1 + k)).requires_grad_(True)
        with offload.active("capture"):
            loss = _forward(offload, xk, w)
        assert torch.equal(offload._arena.buffers[0], xk.detach())  # the staged copy is in its buffer
        assert torch.equal(offload._arena.buffers[1], (xk * w).detach())
        ref = _grads(xk, w, ((xk * w) * w).sum())
        assert all(torch.equal(a, b) for a, b in zip(_grads(xk, w, loss), ref))


def test_capture_needs_buffers_and_the_warm_up_layouts():
    x, w = _inputs()
    offload = GraphOffload(min_bytes=0, force=True)
    with pytest.raises(ValueError, match="after allocate"):
        with offload.active("capture"):
            pass
    with pytest.raises(ValueError, match="'measure'"):
        with offload.active("replay"):
            pass
    with offload.active("measure"):
        _forward(offload, x, w)
    offload.allocate(x.device)
    other = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"warm-up \(saved tensor 0: \(3, 5\) torch.float64; warm-up: "):
        with offload.active("capture"):
            _forward(offload, other, torch.nn.Parameter(torch.randn(3, 5, dtype=torch.float64)))


def test_what_is_not_staged_stays_in_place():
    """A block that does not offload, a transposed (non-contiguous) tensor and a tensor below min_bytes are
    neither noted nor copied; their gradients are still right."""
    x, w = _inputs()
    want = _grads(x, w, ((x * w) * w).sum())
    offload = GraphOffload(min_bytes=0, force=True)
    with offload.active("measure"):
        loss = _forward(offload, x, w, wanted=False)
        xt, wt = x.t(), w.t()
        with offload.block(True):
            lt = (xt * wt).sum()  # saves x.t(): not contiguous
    assert offload.layouts == []
    assert all(torch.equal(a, b) for a, b in zip(_grads(x, w, loss), want))
    assert torch.equal(torch.autograd.grad(lt, w)[0], x.detach())
    small = GraphOffload(min_bytes=x.numel() * 8 + 1, force=True)
    with small.active("measure"):
        _forward(small, x, w)
    assert small.layouts == []


def test_unpacking_one_fetches_the_one_saved_before_it():
    """Backward needs the staged tensors in reverse order: unpacking the k-th starts the (k-1)-th's copy back."""
    offload = GraphOffload(min_bytes=0, force=True)
    tensors = [torch.full((4,), float(k)) for k in range(3)]
    with offload.active("measure"):
        for t in tensors:
            offload._pack(t)
    offload.allocate(torch.device("cpu"))
    with offload.active("capture"):
        packed = [offload._pack(t) for t in tensors]
    assert [p.back is None for p in packed] == [True, True, True]
    assert torch.equal(offload._unpack(packed[2]), tensors[2])
    assert packed[1].back is not None and packed[0].back is None
    assert torch.equal(offload._unpack(packed[1]), tensors[1]) and packed[0].back is not None
    assert torch.equal(offload._unpack(packed[0]), tensors[0])
    first = offload._unpack(packed[1])
    again = offload._unpack(packed[1])  # a second unpack copies back again, into other memory
    assert torch.equal(again, tensors[1]) and again.data_ptr() != first.data_ptr()


def test_each_forward_pass_prefetches_among_its_own_tensors():
    """A second captured pass stages into the same buffers; unpacking its tensors fetches its own earlier tensor,
    not one of the first pass's."""
    offload = GraphOffload(min_bytes=0, force=True)
    with offload.active("measure"):
        for k in range(2):
            offload._pack(torch.full((4,), float(k)))
    offload.allocate(torch.device("cpu"))
    passes = []
    for p in range(2):
        with offload.active("capture"):
            passes.append([offload._pack(torch.full((4,), 10.0 * p + k)) for k in range(2)])
    assert torch.equal(offload._unpack(passes[1][1]), torch.full((4,), 11.0))
    assert passes[1][0].back is not None and passes[0][0].back is None
    assert torch.equal(offload._unpack(passes[1][0]), torch.full((4,), 10.0))


def test_odd_strides_of_size_one_dims_come_back():
    """A contiguous tensor may carry any stride on a size-1 dim; it comes back with the strides it was saved with."""
    offload = GraphOffload(min_bytes=0, force=True)
    odd = torch.arange(6.0).as_strided((2, 1, 3), (3, 7, 1))
    assert odd.is_contiguous()
    with offload.active("measure"):
        offload._pack(odd)
    offload.allocate(torch.device("cpu"))
    with offload.active("capture"):
        packed = offload._pack(odd)
    back = offload._unpack(packed)
    assert back.stride() == (3, 7, 1) and torch.equal(back, odd)
