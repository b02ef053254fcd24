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
back with the shape and strides it was saved with (a view with gaps, such
as ``q`` of ``qkv``, into a fresh buffer of its span). Parameters (and
views of them), broadcast views, empty tensors and tensors smaller than
``min_bytes`` stay where they are. On the CPU nothing is
offloaded unless ``force=True`` (which copies them to fresh CPU tensors: the
tests use it to check the bookkeeping without a GPU).
"""
from __future__ import annotations

import weakref
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor, nn

__all__ = ["OffloadSavedTensors"]


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


def _empty_as_saved(saved: "_Saved") -> Tensor:
    """An empty tensor with the saved tensor's exact shape and strides on its own device.

    What autograd gets back must have the layout it saved: checkpointing
    compares it, and a compiled backward asserts it. A view with gaps (``q``
    of ``qkv``, every third head) comes back as a view with the same gaps
    into a fresh buffer of the view's span.
    """
    buffer = torch.empty(_span(saved.shape, saved.stride), dtype=saved.host.dtype, device=saved.device)
    return buffer.as_strided(saved.shape, saved.stride)


class _Saved:
    """One offloaded tensor: its host copy and, after a prefetch, its GPU copy on the way back."""

    __slots__ = ("host", "device", "shape", "stride", "stored", "back", "back_ready", "__weakref__")

    def __init__(self, host: Tensor, tensor: Tensor, stored: Optional[Any]):
        self.host = host
        self.device = tensor.device
        self.shape, self.stride = tensor.shape, tensor.stride()  # given back exactly
        self.stored = stored  # CUDA event: host copy complete (None on the CPU)
        self.back: Optional[Tensor] = None
        self.back_ready: Optional[Any] = None


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
        weight = isinstance(tensor, nn.Parameter) or isinstance(tensor._base, nn.Parameter)  # e.g. ``W.t()``
        if weight or tensor.numel() == 0 or tensor.numel() * tensor.element_size() < self.min_bytes:
            return False
        if not _separate(tensor.shape, tensor.stride()):  # a broadcast view: its own layout could not be refilled
            return False
        return tensor.device.type == "cuda" or (self.force and tensor.device.type == "cpu")

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
        saved = _Saved(host, tensor, stored)
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
        """Prefetch the tensor saved just before ``saved`` (the next one backward will need)."""
        for position in range(len(self._saved) - 1, 0, -1):
            if self._saved[position]() is saved:
                earlier = self._saved[position - 1]()
                if earlier is not None:
                    self._prefetch(earlier)
                return

    def _unpack(self, packed: Any) -> Tensor:
        if not isinstance(packed, _Saved):
            return packed
        self._prefetch_before(packed)
        if packed.device.type != "cuda":
            return _empty_as_saved(packed).copy_(packed.host)
        current = torch.cuda.current_stream(packed.device)
        if packed.back is not None:
            current.wait_event(packed.back_ready)
            tensor, packed.back, packed.back_ready = packed.back, None, None
            return tensor
        current.wait_event(packed.stored)
        return _empty_as_saved(packed).copy_(packed.host, non_blocking=True)
