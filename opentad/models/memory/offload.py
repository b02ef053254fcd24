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

The values are bit-identical: only where they wait changes. Parameters (and
views of them), empty tensors and tensors smaller than ``min_bytes`` stay where they are. On the CPU nothing is
offloaded unless ``force=True`` (which copies them to fresh CPU tensors: the
tests use it to check the bookkeeping without a GPU).
"""
from __future__ import annotations

import weakref
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor, nn

__all__ = ["OffloadSavedTensors"]


def _empty_like_on(tensor: Tensor, device: torch.device, pin_memory: bool = False) -> Tensor:
    """An empty tensor like ``tensor`` on ``device``, with its strides when they are dense (a transposed view
    stays transposed: checkpointing compares the recomputed tensors' layout with the saved ones'), else
    contiguous."""
    span = 1 + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride()) if n > 0)
    if tensor.numel() > 0 and span == tensor.numel() and min(tensor.stride(), default=1) >= 0:
        return torch.empty_strided(tensor.shape, tensor.stride(), dtype=tensor.dtype, device=device,
                                   pin_memory=pin_memory)
    return torch.empty(tensor.shape, dtype=tensor.dtype, device=device, pin_memory=pin_memory)


class _Saved:
    """One offloaded tensor: its host copy and, after a prefetch, its GPU copy on the way back."""

    __slots__ = ("host", "device", "stored", "back", "back_ready", "__weakref__")

    def __init__(self, host: Tensor, device: torch.device, stored: Optional[Any]):
        self.host = host
        self.device = device
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
            host, stored = tensor.detach().clone(), None
        saved = _Saved(host, tensor.device, stored)
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
        back = _empty_like_on(saved.host, saved.device)
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
            return packed.host.clone()
        current = torch.cuda.current_stream(packed.device)
        if packed.back is not None:
            current.wait_event(packed.back_ready)
            tensor, packed.back, packed.back_ready = packed.back, None, None
            return tensor
        current.wait_event(packed.stored)
        return packed.host.to(packed.device, non_blocking=True)
