"""Activation offloading: what autograd keeps for backward waits in host memory.

With every transformer block checkpointed, what stays on the GPU between
forward and backward is one input per block (``[B, N, C]``), e.g. about
10.5 GiB for VideoMAEv2-g at batch 2, 768 frames, 160 px, bf16. Inside
:class:`OffloadSavedTensors`, each large tensor autograd saves (the
checkpointed blocks' inputs) is copied to pinned host memory on a side CUDA
stream while the next blocks compute, and its GPU memory is released once the
copy is done. In backward, when a block's input is needed, the input of the
block before it is already copied back on the side stream (blocks run
backward in the reverse order), so transfers overlap the computation.

The values are bit-identical: only where they wait changes, and each comes
back with the shape and strides it was saved with (views with gaps, such as
``q``, ``k`` and ``v`` of one ``qkv``, as views into one buffer no larger
than their base). Parameters (and
views of them), tensors marked :func:`keep_on_device` (frozen weights' held
and fp8 copies, which live the whole step; autograd saves them as a compiled
block's inputs), broadcast views, empty tensors and tensors smaller than
``min_bytes`` stay where they are. On the CPU nothing is
offloaded unless ``force=True`` (which copies them to fresh CPU tensors: the
tests use it to check the bookkeeping without a GPU).
"""
from __future__ import annotations

import weakref
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

__all__ = ["OffloadSavedTensors", "offloadable", "keep_on_device"]

#: storage address -> weak reference to the tensor marked there by :func:`keep_on_device`
_RESIDENT: Dict[int, "weakref.ReferenceType[Tensor]"] = {}


def keep_on_device(tensor: Tensor) -> Tensor:
    """Mark ``tensor`` (a copy of a frozen weight that lives as long as its layer) so that neither it nor a view of
    it is ever offloaded when autograd saves it; the mark goes with the tensor. Returns ``tensor``."""
    if tensor.numel():
        address = tensor.untyped_storage().data_ptr()

        def forget(ref, address=address):
            if _RESIDENT.get(address) is ref:
                del _RESIDENT[address]

        _RESIDENT[address] = weakref.ref(tensor, forget)
    return tensor


def _resident(tensor: Tensor) -> bool:
    ref = _RESIDENT.get(tensor.untyped_storage().data_ptr())
    return ref is not None and ref() is not None


def _span(shape, stride) -> int:
    """Elements a layout reaches from its first one (non-negative strides, no empty dim)."""
    return 1 + sum((n - 1) * s for n, s in zip(shape, stride))


def _separate(shape, stride) -> bool:
    """Whether no two elements of the layout share memory (checked as: every stride, taken in increasing
    order, reaches past all the elements the smaller ones span; broadcast views fail it)."""
    span = 1
    for n, s in sorted(((n, s) for n, s in zip(shape, stride) if n > 1), key=lambda d: d[1]):
        if s < span:
            return False
        span += (n - 1) * s
    return True


def _empty_like_on(tensor: Tensor, device: torch.device, pin_memory: bool = False) -> Tensor:
    """An empty tensor like ``tensor`` on ``device`` (the host copy), with its strides when they are dense (a
    transposed view stays transposed), else contiguous: only its own elements travel."""
    if _span(tensor.shape, tensor.stride()) == tensor.numel():
        return torch.empty_strided(tensor.shape, tensor.stride(), dtype=tensor.dtype, device=device,
                                   pin_memory=pin_memory)
    return torch.empty(tensor.shape, dtype=tensor.dtype, device=device, pin_memory=pin_memory)


def offloadable(tensor: Tensor, min_bytes: int, force: bool = False) -> bool:
    """Whether a saved tensor goes to host memory: a strided CUDA tensor (a CPU one with ``force``) of at least
    ``min_bytes``, not a parameter, a :func:`keep_on_device` tensor or a view of either, whose elements do not
    overlap (a broadcast view's layout could not be refilled)."""
    if tensor.layout != torch.strided or not (tensor.device.type == "cuda" or (force and tensor.device.type == "cpu")):
        return False
    weight = isinstance(tensor, nn.Parameter) or isinstance(tensor._base, nn.Parameter)  # e.g. ``W.t()``
    if weight or tensor.numel() == 0 or tensor.numel() * tensor.element_size() < min_bytes or _resident(tensor):
        return False
    return _separate(tensor.shape, tensor.stride())


class _Views:
    """Saved tensors of one dtype whose elements interleave in one base tensor (``q``, ``k`` and ``v`` of one
    ``qkv``): they come back as views into one shared buffer spanning all of them (never more than the base
    itself), not one each. The group holds the buffer until each member has been unpacked once; their views
    hold it after that."""

    __slots__ = ("dtype", "lo", "hi", "pending", "buffer")

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.lo, self.hi = None, None  # storage offsets spanned by the members
        self.pending = 0  # members not unpacked yet
        self.buffer: Optional[Tensor] = None

    def add(self, offset: int, span: int) -> None:
        self.lo = offset if self.lo is None else min(self.lo, offset)
        self.hi = offset + span if self.hi is None else max(self.hi, offset + span)
        self.pending += 1

    def unpacked(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.buffer = None


def _empty_as_saved(saved: "_Saved") -> Tensor:
    """An empty tensor with the saved tensor's exact shape and strides on its own device.

    What autograd gets back must have the layout it saved: checkpointing
    compares it, and a compiled backward asserts it. A view with gaps (``q``
    of ``qkv``) comes back as a view with the same gaps into a buffer that
    the other saved views of its base share (:class:`_Views`).
    """
    views = saved.views
    if views.buffer is None:  # the first member back (or one unpacked a second time): a fresh buffer
        views.buffer = torch.empty(views.hi - views.lo, dtype=views.dtype, device=saved.device)
    return views.buffer.as_strided(saved.shape, saved.stride, saved.offset - views.lo)


class _Saved:
    """One offloaded tensor: its host copy and, after a prefetch, its GPU copy on the way back."""

    __slots__ = ("host", "device", "shape", "stride", "offset", "views", "stored", "back", "back_ready",
                 "unpacked", "__weakref__")

    def __init__(self, host: Tensor, tensor: Tensor, views: _Views, stored: Optional[Any]):
        self.host = host
        self.device = tensor.device
        self.shape, self.stride = tensor.shape, tensor.stride()  # given back exactly
        self.offset, self.views = tensor.storage_offset(), views
        views.add(self.offset, _span(self.shape, self.stride))
        self.stored = stored  # CUDA event: host copy complete (None on the CPU)
        self.back: Optional[Tensor] = None
        self.back_ready: Optional[Any] = None
        self.unpacked = False


class OffloadSavedTensors:
    """Context manager moving the tensors autograd saves inside it to host memory until backward.

    Use one instance per forward pass::

        with OffloadSavedTensors():
            out = model(x)          # checkpointed blocks: their inputs go to host memory
        out.sum().backward()        # and come back, one block ahead

    Args:
        min_bytes: smaller saved tensors stay in place.
        force: also offload CPU tensors (to CPU copies): for tests.

    Attributes:
        offloaded_bytes: bytes moved to the host so far.
        offloaded_tensors: tensors moved so far.
    """

    def __init__(self, *, min_bytes: int = 1 << 20, force: bool = False):
        self.min_bytes = int(min_bytes)
        self.force = force
        self.offloaded_bytes = 0
        self.offloaded_tensors = 0
        self._saved: List[weakref.ref] = []
        self._views: Dict[int, Tuple[weakref.ref, List[_Views]]] = {}  # by id of the live base
        self._streams: Dict[torch.device, Any] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def __enter__(self) -> "OffloadSavedTensors":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)

    def _side_stream(self, device: torch.device):
        if device not in self._streams:
            self._streams[device] = torch.cuda.Stream(device)
        return self._streams[device]

    def _wanted(self, tensor: Tensor) -> bool:
        return offloadable(tensor, self.min_bytes, self.force)

    def _views_of(self, tensor: Tensor) -> _Views:
        """The group of ``tensor``: the saved views of the same base (a tensor not a view is its own base) whose
        elements interleave with its own. Disjoint ranges (the chunks of one tensor, each checkpointed) keep
        groups of their own, so that each comes back alone."""
        base = tensor._base if tensor._base is not None else tensor
        entry = self._views.get(id(base))
        if entry is None or entry[0]() is not base:  # a new base (perhaps at a dead one's id)
            entry = self._views[id(base)] = (weakref.ref(base), [])
        lo = tensor.storage_offset()
        hi = lo + _span(tensor.shape, tensor.stride())
        for views in entry[1]:
            if views.dtype == tensor.dtype and views.lo < hi and lo < views.hi:
                return views
        entry[1].append(_Views(tensor.dtype))
        return entry[1][-1]

    def _pack(self, tensor: Tensor) -> Any:
        if not self._wanted(tensor):
            return tensor
        if tensor.device.type == "cuda":
            stream = self._side_stream(tensor.device)
            stream.wait_stream(torch.cuda.current_stream(tensor.device))
            host = _empty_like_on(tensor, torch.device("cpu"), pin_memory=True)
            with torch.cuda.stream(stream):
                host.copy_(tensor, non_blocking=True)
                stored = torch.cuda.Event()
                stored.record(stream)
            tensor.record_stream(stream)  # its memory is reused only after the copy
        else:
            host, stored = _empty_like_on(tensor, tensor.device).copy_(tensor.detach()), None
        saved = _Saved(host, tensor, self._views_of(tensor), stored)
        self._saved.append(weakref.ref(saved))
        self.offloaded_bytes += tensor.numel() * tensor.element_size()
        self.offloaded_tensors += 1
        return saved

    def _prefetch(self, saved: _Saved) -> None:
        """Start copying ``saved`` back to its GPU on the side stream."""
        if saved.back is not None or saved.device.type != "cuda":
            return
        stream = self._side_stream(saved.device)
        compute = torch.cuda.current_stream(saved.device)  # taken here: inside the block below it is ``stream``
        back = _empty_as_saved(saved)
        # ``back`` may reuse memory that kernels queued on the compute stream still read or write
        # (the allocator frees in that stream's order): write only after them
        stream.wait_stream(compute)
        with torch.cuda.stream(stream):
            stream.wait_event(saved.stored)
            back.copy_(saved.host, non_blocking=True)
            saved.back_ready = torch.cuda.Event()
            saved.back_ready.record(stream)
        back.record_stream(stream)
        saved.back = back

    def _prefetch_before(self, saved: _Saved) -> None:
        """Prefetch the nearest tensor saved before ``saved`` that is still to be unpacked (the next one backward
        will need; tensors one node saved together are unpacked together, so those are skipped)."""
        for position in range(len(self._saved) - 1, 0, -1):
            if self._saved[position]() is saved:
                for earlier in (ref() for ref in reversed(self._saved[:position])):
                    if earlier is not None and not earlier.unpacked:
                        self._prefetch(earlier)
                        return
                return

    def _unpack(self, packed: Any) -> Tensor:
        if not isinstance(packed, _Saved):
            return packed
        first, packed.unpacked = not packed.unpacked, True
        self._prefetch_before(packed)
        tensor = self._restored(packed)
        if first:
            packed.views.unpacked()
        return tensor

    def _restored(self, packed: _Saved) -> Tensor:
        """``packed`` back on its device, in its layout (the prefetched copy when there is one)."""
        if packed.device.type != "cuda":
            return _empty_as_saved(packed).copy_(packed.host)
        current = torch.cuda.current_stream(packed.device)
        if packed.back is not None:
            current.wait_event(packed.back_ready)
            tensor, packed.back, packed.back_ready = packed.back, None, None
            return tensor
        current.wait_event(packed.stored)
        return _empty_as_saved(packed).copy_(packed.host, non_blocking=True)
