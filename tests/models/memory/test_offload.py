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
    # layouts other than strided (a sparse gradient's saved indices) stay, on any device, unasked
    assert not OffloadSavedTensors(min_bytes=0, force=True)._wanted(torch.eye(64).to_sparse())


def test_weight_copies_kept_on_device_stay_and_their_mark_goes_with_them():
    """A frozen weight's held or fp8 copy is a plain tensor that a linear saves for its input gradient (a compiled
    block saves it as a graph input): marked with ``keep_on_device`` it stays, as a view of it does, and nothing
    else changes; unmarked, it would travel to the host and back every step."""
    from opentad.models.memory import offload as offload_module

    big = torch.randn(32, 64, requires_grad=True)
    moved = {}
    for marked in (False, True):
        weight = torch.randn(48, 64)
        if marked:
            assert offload_module.keep_on_device(weight) is weight
        offload = OffloadSavedTensors(min_bytes=1, force=True)
        with offload:
            y = torch.nn.functional.linear(big, weight).sum() + (big @ weight.t()[:, :16]).sum()
        y.backward()
        moved[marked] = offload.offloaded_tensors
    assert moved == {False: 2, True: 0}, moved  # the weight and its transposed view
    address = weight.untyped_storage().data_ptr()
    assert address in offload_module._RESIDENT
    del weight
    assert address not in offload_module._RESIDENT


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


class _Layouts(torch.autograd.Function):
    """``sum(q * k + 2 v + bias)`` per row, saving tensors with the layouts attention saves: ``q`` and ``k.T``,
    views with gaps into one ``qkv`` buffer; ``(2 v).T``, dense but transposed; a broadcast view of the bias.
    Backward records what it gets back: the layouts, and the buffers ``q`` and ``k.T`` live in."""

    seen = []

    @staticmethod
    def forward(ctx, qkv, bias):
        q, k = qkv[..., 0::3], qkv[..., 1::3]  # every third column: strides (96, 3), gaps
        kt = k.transpose(-1, -2)  # strides (3, 96): gaps, transposed
        v2t = (2 * qkv[..., 2::3]).t()  # a fresh [64, 32] transposed: strides (1, 32), dense
        wide = bias.expand(qkv.shape[0], -1)  # stride 0: a broadcast view
        ctx.save_for_backward(q, kt, v2t, wide)
        ctx.layouts = [(t.shape, t.stride()) for t in (q, kt, v2t, wide)]
        return (q * k + v2t.t() + wide[..., : q.shape[-1]]).sum(-1)

    @staticmethod
    def backward(ctx, grad):
        q, kt, v2t, wide = ctx.saved_tensors
        _Layouts.seen.append(dict(
            layouts=[(t.shape, t.stride()) for t in (q, kt, v2t, wide)] == ctx.layouts,
            buffers=[(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) for t in (q, kt)]))
        k = kt.transpose(-1, -2)
        grad_qkv = q.new_zeros(q.shape[0], q.shape[1] * 3)
        grad_qkv[..., 0::3] = grad[:, None] * k
        grad_qkv[..., 1::3] = grad[:, None] * q
        grad_qkv[..., 2::3] = 2 * grad[:, None]
        return grad_qkv, grad[:, None].expand_as(wide)[..., : wide.shape[-1]].sum(0)


def _layouts_round_trip(device: str, offload: OffloadSavedTensors) -> None:
    gen = torch.Generator().manual_seed(0)
    qkv = torch.randn(64, 3 * 32, generator=gen).to(device).requires_grad_(True)
    bias = torch.randn(3 * 32, generator=gen).to(device).requires_grad_(True)
    _Layouts.seen.clear()
    _Layouts.apply(qkv, bias).square().sum().backward()
    ref = qkv.grad.clone(), bias.grad.clone()
    qkv.grad = bias.grad = None
    with offload:
        out = _Layouts.apply(qkv, bias)
    out.square().sum().backward()
    assert [seen["layouts"] for seen in _Layouts.seen] == [True, True]
    (q_ptr, q_bytes), (k_ptr, k_bytes) = _Layouts.seen[1]["buffers"]
    assert q_ptr == k_ptr and q_bytes == k_bytes <= qkv.numel() * qkv.element_size()
    assert offload.offloaded_tensors == 3  # q, k.T and (2 v).T; the broadcast view stays
    assert offload.offloaded_bytes == 3 * 64 * 32 * 4  # only the tensors' own elements travel
    assert torch.equal(qkv.grad, ref[0]) and torch.equal(bias.grad, ref[1])


def test_saved_tensors_come_back_with_their_layout_and_values():
    """A compiled backward asserts the strides of what it saved: ``q`` and ``k.T`` views of ``qkv`` must come
    back as views with the same gaps, into one buffer no larger than ``qkv`` (not one each); a dense transposed
    tensor keeps its strides; a broadcast view (which could not be refilled) stays."""
    _layouts_round_trip("cpu", OffloadSavedTensors(min_bytes=0, force=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_views_come_back_through_pinned_memory_and_prefetch():
    _layouts_round_trip("cuda", OffloadSavedTensors(min_bytes=0))


class _SavesInput(torch.autograd.Function):
    """``2 x``, saving ``x``; backward records the bytes of the buffer the saved ``x`` came back in."""

    buffers = []

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        _SavesInput.buffers.append(x.untyped_storage().nbytes())
        return 2 * grad


def test_disjoint_views_of_one_tensor_come_back_alone():
    """The chunks of one tensor (temporal checkpointing saves each) do not interleave: each comes back in a
    buffer of its own size, one at a time, not all of them in one buffer of the whole tensor."""
    x = torch.randn(8, 16, 32, requires_grad=True)
    _SavesInput.buffers.clear()
    with OffloadSavedTensors(min_bytes=0, force=True):
        out = torch.cat([_SavesInput.apply(chunk) for chunk in x.chunk(4)])
    out.sum().backward()
    assert _SavesInput.buffers == [2 * 16 * 32 * 4] * 4
    assert torch.equal(x.grad, torch.full_like(x, 2.0))


def test_prefetch_skips_tensors_already_unpacked(monkeypatch):
    """Tensors one node saved are unpacked together: prefetching the one saved just before (already unpacked,
    its copy already used) would copy it again for nothing. Each prefetch must be of a tensor still to come."""
    prefetched = []
    monkeypatch.setattr(OffloadSavedTensors, "_prefetch", lambda self, saved: prefetched.append((saved, saved.unpacked)))
    gen = torch.Generator().manual_seed(1)
    qkv = torch.randn(64, 3 * 32, generator=gen, requires_grad=True)
    bias = torch.randn(3 * 32, generator=gen, requires_grad=True)
    with OffloadSavedTensors(min_bytes=0, force=True):
        x = qkv
        for _ in range(3):  # three nodes of three offloaded tensors each
            x = _Layouts.apply(x, bias)[:, None].expand(-1, 96) * 1.0
    x.sum().backward()
    # (the real _prefetch ignores a tensor already on its way back; this one records every request)
    assert prefetched and not any(was_unpacked for _, was_unpacked in prefetched)
    assert len({id(saved) for saved, _ in prefetched}) == 2  # the last saved of each earlier node


@pytest.mark.parametrize("shape, stride, says", [
    ((4, 8), (8, 1), True), ((4, 8), (1, 4), True), ((4, 8), (24, 3), True), ((4, 8), (0, 1), False),
    ((4, 8), (4, 1), False), ((1, 8), (0, 1), True), ((2, 3, 4), (12, 1, 3), True), ((2, 3, 4), (12, 2, 4), False),
    ((2, 3, 4), (12, 2, 3), False),  # separate in fact (interleaved), refused: the check is only sufficient
])
def test_separate_layouts_never_share_memory(shape, stride, says):
    from opentad.models.memory.offload import _separate
    import itertools
    offsets = [sum(i * s for i, s in zip(index, stride)) for index in itertools.product(*map(range, shape))]
    assert _separate(shape, stride) == says
    assert not says or len(set(offsets)) == len(offsets)  # what it calls separate is, by brute force
