"""Activation offloading inside CUDA graphs (``cuda_graphs`` with ``offload_activations`` or offloading plans).

:class:`~.offload.OffloadSavedTensors` takes fresh pinned host memory for each
saved tensor and lets the allocator track the copies (``record_stream``):
neither can be captured. While :class:`~.cuda_graphs.BlockGraphs` captures,
the blocks that offload use a :class:`GraphOffload` instead:

- its eager warm-up run (on the capture stream, before capture) offloads as
  ``OffloadSavedTensors`` does and notes the shape and dtype of each tensor it
  will stage (contiguous, not a parameter, at least ``min_bytes``);
- one host allocation then holds a buffer for each, page-locked with
  ``cudaHostRegister`` (unknown to PyTorch's host allocator, which would
  record events on it), so the copies are asynchronous and capturable;
- in the captured forward, the k-th saved tensor is copied into the k-th
  buffer on a side stream; the GPU tensor is kept until the compute stream
  has waited for its copy, two saved tensors later, and is then released in
  the compute stream's order, so the graph's memory pool reuses it;
- in the captured backward, a saved tensor comes back into new GPU memory,
  and the one saved before it is copied back on the side stream while the
  block computes (blocks run backward in reverse order).

Every replay of the forward graph overwrites the buffers, and the backward
graph that follows reads them: replays alternate (a second forward before
backward runs eagerly). Values are bit-identical, as with eager offloading.
Tensors of other layouts stay on the GPU (their memory stays in the pool).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor

from .offload import OffloadSavedTensors, offloadable

__all__ = ["GraphOffload", "staging"]

_STAGING = threading.local()  # .offload: the GraphOffload of the capture under way in this thread

#: saved tensors whose copies may still be in flight before the compute stream waits for the oldest
_LAG = 2
#: byte alignment of each buffer in the host allocation
_ALIGN = 512

Layout = Tuple[torch.Size, torch.dtype]


def staging() -> Optional["GraphOffload"]:
    """The :class:`GraphOffload` of the capture (or warm-up run) under way in this thread, else None."""
    return getattr(_STAGING, "offload", None)


def _same(tensor: Tensor) -> Tensor:
    return tensor


class _HostArena:
    """One host allocation carved into a buffer per layout, page-locked for CUDA (``register``) until closed."""

    def __init__(self, layouts: List[Layout], device: torch.device):
        offsets, total = [], 0
        for shape, dtype in layouts:
            offsets.append(total)
            size = shape.numel() * dtype.itemsize
            total += -(-size // _ALIGN) * _ALIGN
        self.memory = torch.empty(max(total, 1), dtype=torch.uint8)
        self.device, self.registered = device, False
        if device.type == "cuda" and total:  # 1: cudaHostRegisterPortable, page-locked for every CUDA context
            code = int(torch.cuda.cudart().cudaHostRegister(self.memory.data_ptr(), total, 1))
            if code != 0:
                raise RuntimeError(f"cudaHostRegister of {total} bytes of host memory failed (cudaError {code})")
            self.registered = True
        self.buffers = [self.memory[o:o + shape.numel() * dtype.itemsize].view(dtype).view(shape)
                        for o, (shape, dtype) in zip(offsets, layouts)]

    def close(self) -> None:
        """Unregister the memory, after the device has finished the copies queued on it (a replay may still run)."""
        if self.registered:
            self.registered = False
            if not torch.cuda.is_current_stream_capturing():
                torch.cuda.synchronize(self.device)
            torch.cuda.cudart().cudaHostUnregister(self.memory.data_ptr())

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- at interpreter exit CUDA may already be gone; the process frees it all
            pass


class _Staged:
    """One tensor saved in a captured forward: its buffer index, where it comes back, and its copy back."""

    __slots__ = ("index", "host", "device", "stride", "peers", "back", "ready", "unpacked")

    def __init__(self, index: int, host: Tensor, tensor: Tensor, peers: List["_Staged"]):
        self.index, self.host, self.device = index, host, tensor.device
        self.stride = tensor.stride()  # given back exactly (a size-1 dim may have any stride)
        self.peers = peers  # the tensors staged in the same forward, in saving order
        self.back: Optional[Tensor] = None
        self.ready: Optional[Any] = None  # CUDA event: ``back`` filled
        self.unpacked = False


class GraphOffload:
    """Capturable offloading of what the blocks save, for one captured input (see the module docstring).

    Use: :meth:`active` around the warm-up run (``"measure"``), then :meth:`allocate`, then :meth:`active`
    around the captured forward (``"capture"``); the policy enters :meth:`block` around each block; after the
    captured backward, :meth:`join`.

    Args:
        min_bytes: smaller saved tensors stay in place.
        force: stage CPU tensors too (CPU copies; the tests' emulated graphs).

    Attributes:
        layouts: shape and dtype of each staged tensor, in saving order (from the warm-up run).
        staged_bytes: bytes of the staged tensors (the host allocation aligns each buffer to 512 bytes).
    """

    def __init__(self, *, min_bytes: int = 1 << 20, force: bool = False):
        self.min_bytes, self.force = int(min_bytes), force
        self.layouts: List[Layout] = []
        self.mode = "measure"
        self._eager = OffloadSavedTensors(min_bytes=min_bytes, force=force)
        self._arena: Optional[_HostArena] = None
        self._streams: Dict[torch.device, Any] = {}
        self._packed = 0
        self._saved: List[_Staged] = []
        self._inflight: List[Tuple[Tensor, Any]] = []

    @property
    def staged_bytes(self) -> int:
        return sum(shape.numel() * dtype.itemsize for shape, dtype in self.layouts)

    @contextlib.contextmanager
    def active(self, mode: str) -> Iterator["GraphOffload"]:
        """This object as :func:`staging`'s answer for one forward run: ``"measure"`` (the eager warm-up: offload
        eagerly, note layouts) or ``"capture"`` (copy into the buffers); saved tensors of blocks that do not
        offload stay where they are. Joins the side stream into the current one at the end."""
        if mode not in ("measure", "capture") or (mode == "capture" and self._arena is None):
            raise ValueError(f"GraphOffload.active({mode!r}): 'measure', or 'capture' after allocate()")
        self.mode, self._packed, self._saved = mode, 0, []
        if mode == "measure":
            self.layouts = []
        previous, _STAGING.offload = staging(), self
        try:
            with self.kept():  # nothing between blocks reaches an offloading context outside the graphs
                yield self
        finally:
            _STAGING.offload = previous
            self._release(keep=0)
            self.join()

    def kept(self):
        """Saved-tensor hooks that keep every saved tensor in place: around a backward captured while an
        offloading context is open (the fixed settings offload around the whole backbone), whose chunked
        recomputation saves tensors for its own backward, as an eager backward outside that context would."""
        return torch.autograd.graph.saved_tensors_hooks(_same, _same)

    def block(self, wanted: bool):
        """The saved-tensor hooks for one block: staged when ``wanted`` (its plan offloads), else in place.
        (Made per use: hooks held by this object would be a reference cycle keeping its host memory.)"""
        if not wanted:
            return self.kept()
        return torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def allocate(self, device: torch.device) -> None:
        """The host buffers of :attr:`layouts` (page-locked on CUDA).

        Raises:
            RuntimeError: the host memory could not be registered with CUDA.
        """
        if self._arena is not None:
            self._arena.close()
        self._arena = _HostArena(self.layouts, device)

    def join(self) -> None:
        """Make the current CUDA streams wait for this object's side streams (a capture must end joined)."""
        for device, side in self._streams.items():
            torch.cuda.current_stream(device).wait_stream(side)

    def _side(self, device: torch.device):
        if device not in self._streams:
            self._streams[device] = torch.cuda.Stream(device)
        return self._streams[device]

    def _stages(self, tensor: Tensor) -> bool:
        return offloadable(tensor, self.min_bytes, self.force) and tensor.is_contiguous()

    def _pack(self, tensor: Tensor) -> Any:
        if self.mode == "measure":
            if self._stages(tensor):
                self.layouts.append((tensor.shape, tensor.dtype))
            return self._eager._pack(tensor)
        if not self._stages(tensor):
            return tensor
        index, self._packed = self._packed, self._packed + 1
        if index >= len(self.layouts) or self.layouts[index] != (tensor.shape, tensor.dtype):
            raise RuntimeError(f"cuda_graphs: the blocks saved other tensors while capturing than in their warm-up "
                               f"(saved tensor {index}: {tuple(tensor.shape)} {tensor.dtype}; warm-up: "
                               f"{self.layouts[index] if index < len(self.layouts) else 'none'})")
        staged = _Staged(index, self._arena.buffers[index], tensor, self._saved)
        if tensor.device.type == "cuda":
            main, side = torch.cuda.current_stream(tensor.device), self._side(tensor.device)
            side.wait_stream(main)
            with torch.cuda.stream(side):
                staged.host.copy_(tensor, non_blocking=True)
                done = torch.cuda.Event()
                done.record(side)
            self._inflight.append((tensor, done))  # the GPU tensor lives until the compute stream waited
            self._release(keep=_LAG)
        else:
            staged.host.copy_(tensor.detach())
        self._saved.append(staged)
        return staged

    def _release(self, keep: int) -> None:
        """Let go of the GPU tensors of all but the ``keep`` latest copies, after the compute stream waits for
        their copies (their memory is then reused in its order)."""
        while len(self._inflight) > keep:
            tensor, done = self._inflight.pop(0)
            torch.cuda.current_stream(tensor.device).wait_event(done)

    def _unpack(self, packed: Any) -> Tensor:
        if not isinstance(packed, _Staged):
            return self._eager._unpack(packed)  # a warm-up run's (or a tensor kept in place)
        if packed.back is None:
            self._fetch(packed)
        if packed.ready is not None:
            torch.cuda.current_stream(packed.device).wait_event(packed.ready)
        tensor, packed.back, packed.ready, packed.unpacked = packed.back, None, None, True
        for earlier in reversed(packed.peers[:packed.index]):  # the next one backward needs, on its way
            if not earlier.unpacked:
                if earlier.back is None:
                    self._fetch(earlier)
                break
        return tensor

    def _fetch(self, staged: _Staged) -> None:
        """Start copying ``staged`` back to its device (on the side stream on CUDA)."""
        back = torch.empty_strided(staged.host.shape, staged.stride, dtype=staged.host.dtype, device=staged.device)
        if staged.device.type != "cuda":
            staged.back = back.copy_(staged.host)
            return
        main, side = torch.cuda.current_stream(staged.device), self._side(staged.device)
        side.wait_stream(main)  # ``back`` may reuse memory the compute stream's queued kernels still use
        with torch.cuda.stream(side):
            back.copy_(staged.host, non_blocking=True)
            staged.ready = torch.cuda.Event()
            staged.ready.record(side)
        staged.back = back
