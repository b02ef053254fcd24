"""CUDA graphs of a ViT's transformer blocks in training (``custom.cuda_graphs``, :class:`BlockGraphs`).

A small ViT's step waits on the host: ViT-S launches about 6,800 kernels
a step, each a few microseconds of device work (docs/benchmarks.md, run 16).
With ``cuda_graphs`` the blocks' forward (as the policy runs them: kept,
checkpointed or chunked) is captured once as one CUDA graph, and their
backward (recomputation included) as a second one; each later step replays
the two graphs, two launches instead of thousands::

    step k:  tokens ──copy──► static input ──replay forward graph──► static output ──► head, loss
             grads of params ◄──replay backward graph── static output grad ◄──copy── autograd

Capture happens at the :attr:`BlockGraphs.warmup`-th + 1 call with the same
input (shape, dtype, autocast, the blocks' modes): the calls before run
eagerly (the memory planner's profile, cuDNN's and the compiler's first
runs), then one eager forward and backward on the capture stream.

What the graphs keep: their memory pool holds what the blocks save for
backward and the backward's working memory, for as long as the graph
lives (:attr:`BlockGraphs.max_graphs` inputs at most, the oldest dropped),
outside the caching allocator's other blocks. The values are those of the
eager blocks: the same kernels, replayed. Random numbers are drawn from
the same kind of generator but other streams of it: a checkpointed block
(its adapter inside it included) draws from the block's own generator
(:func:`.graph_rng.checkpoint_bound`), and with the chunked backward the block's
stochastic-depth factors come from the block's generator and its
separately checkpointed adapter from the adapter's (:mod:`.graph_rng`).
Each generator's state is set back before the backward graph recomputes,
so that recomputation draws what the forward drew
(``torch.utils.checkpoint``'s way, reading the generator's state on the
host, cannot be captured). Seeded runs stay reproducible, but draw other
numbers than eager runs of the same seed.

Calls run eagerly instead (always correct) when: autograd does not record,
the input is not on a CUDA device (unless an emulating backend is given:
the tests), nothing in the blocks trains, or a graph's backward of an
earlier forward is still pending (a second forward before backward:
gradient accumulation; warned). Each input is captured anew when anything
the graphs depend on changes: the policy's settings and per-block plans,
which parameters train, any module's ``training`` flag, or the address of
any tensor the blocks hold (:func:`tensors_read`); graphs of the same
input made stale by moved weights or changed plans are dropped at the
first call that finds them stale, before the new key's eager warm-up
calls. A capture that fails raises, naming the key that turns graphs off.

Offloading blocks (``offload_activations``, a plan that offloads) offload
inside the graphs too: their saved tensors are copied into host buffers
registered once per captured input (:mod:`.graph_offload`). Not with
temporal checkpointing (a whole-backbone checkpoint outside the blocks).
"""
from __future__ import annotations

import collections
import logging
import weakref
from typing import Any, Callable, Dict, Hashable, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .graph_capture import Captured, CudaGraphBackend, EmulatedGraphBackend, Replay, RunBlocks, autocast_without_cache

logger = logging.getLogger(__name__)

__all__ = ["BlockGraphs", "CudaGraphBackend", "EmulatedGraphBackend", "tensors_read"]

#: how deep :func:`tensors_read` looks into objects held as attributes (a fp8 cache, a quantization state): a
#: container's items are one level down, an object's or a tensor's attributes two; a 4-bit weight's nested
#: quantization state (``weight.quant_state.state2.absmax``) is six
_DEPTH = 6

#: what every module holds (hook tables, flags, parameters, buffers, submodules): walked on their own or tensor-free
_MODULE_STATE = frozenset(vars(nn.Module()))

#: inputs seen but not captured yet that :class:`BlockGraphs` remembers (the oldest are forgotten)
_SEEN = 64


#: exact types that hold no tensor (skipped without a call: the walk runs at every step)
_LEAVES = frozenset({int, float, bool, str, bytes, type(None), torch.dtype, torch.device, torch.Size,
                     weakref.ReferenceType})


def _addresses(value: Any, found: List[int], depth: int) -> None:
    """Append the data addresses of the tensors in ``value``: a tensor (with its own attributes, e.g. a 4-bit
    weight's quantization state), a list, tuple or dict of them, or an object's attributes (not a module's:
    submodules are walked on their own), down to ``depth`` levels (a container's items one level down, a
    tensor's or an object's attributes two)."""
    if isinstance(value, Tensor):
        found.append(value.data_ptr())
        owned = getattr(value, "__dict__", None)
        if owned and depth > 0:
            _items(owned.values(), found, depth - 1)
    elif depth <= 0 or type(value) in _LEAVES or isinstance(value, (nn.Module, str, bytes, int, float, bool)):
        return
    elif isinstance(value, (list, tuple)):
        _items(value, found, depth)
    elif isinstance(value, dict):
        _items(value.values(), found, depth)
    else:
        _items(getattr(value, "__dict__", {}).values(), found, depth - 1)
        _items([getattr(value, n, None) for n in getattr(type(value), "__slots__", ())], found, depth - 1)


def _items(values: Iterable[Any], found: List[int], depth: int) -> None:
    """:func:`_addresses` of each of ``values`` one level down (nothing at ``depth`` 0)."""
    if depth <= 0:
        return
    for value in values:
        if type(value) not in _LEAVES:
            _addresses(value, found, depth - 1)


def tensors_read(blocks: Sequence[nn.Module]) -> Tuple[int, ...]:
    """The addresses of every tensor the blocks' modules hold: parameters (and the tensors they carry, such as a
    4-bit weight's quantization state), buffers, and what modules keep as attributes (held dequantized weights,
    fp8 copies and their scales, in lists, dicts or objects): a graph reads each where it was at capture.

    Computed at every step (the graphs' key), so the walk skips what holds no tensor without a call: 5.7-6.4 ms
    for 40 blocks of a tiny-width QLoRA ViT with fp8 copies on one core of an AMD EPYC, where the first version
    took 11.7-14.2 ms and, four levels deep, missed the nested quantization states
    (``tools/benchmark_graph_key.py``; docs/benchmarks.md; tests/models/memory/test_tensors_read.py)."""
    found: List[int] = []
    for block in blocks:
        for module in block.modules():
            for value in module._parameters.values():
                if value is not None:
                    _addresses(value, found, _DEPTH)
            for value in module._buffers.values():
                if value is not None:
                    _addresses(value, found, _DEPTH)
            for key, value in vars(module).items():
                if key not in _MODULE_STATE and type(value) not in _LEAVES:
                    _addresses(value, found, _DEPTH)
    return tuple(found)


class BlockGraphs:
    """Captured graphs of a stack of blocks, per input; :meth:`run` replays them (see the module docstring).

    Args:
        warmup: eager calls with an input before its graphs are captured.
        max_graphs: inputs whose graphs are kept (each keeps its memory pool); the least recently used goes.
        backend: :class:`CudaGraphBackend` (None) or :class:`EmulatedGraphBackend` (tests, any device).

    A copy (``copy.deepcopy``, pickling: an EMA model, a saved module) starts with no graphs.

    Raises:
        ValueError: ``warmup`` below 0 or ``max_graphs`` below 1.
    """

    def __init__(self, *, warmup: int = 2, max_graphs: int = 2, backend: Any = None):
        if warmup < 0 or max_graphs < 1:
            raise ValueError(f"BlockGraphs: warmup={warmup} must be >= 0 and max_graphs={max_graphs} >= 1")
        self.warmup, self.max_graphs = warmup, max_graphs
        self.backend = CudaGraphBackend() if backend is None else backend
        self.settings: Hashable = None  # the policy settings these graphs serve (set by the policy)
        self._captured: "collections.OrderedDict[Tuple[Any, ...], Captured]" = collections.OrderedDict()
        self._seen: "collections.OrderedDict[Tuple[Any, ...], int]" = collections.OrderedDict()
        self._eager_while_pending = 0

    def __len__(self) -> int:
        return len(self._captured)

    def held_bytes(self, shape: Optional[Tuple[int, ...]] = None) -> int:
        """Bytes of the tensors the captured graphs keep allocated between replays: each input's static input,
        output and incoming gradient and the gradient buffers (of the trained parameters, then of the input
        when it needs one). (Their pool's working memory, free between replays but reserved for them, is not
        counted.)

        Args:
            shape: only the graphs of inputs of this shape (``[B, N, C]``); None: all.
        """
        storages: Dict[int, int] = {}
        for c in self._captured.values():
            if shape is not None and tuple(c.static_in.shape) != tuple(shape):
                continue
            for t in (c.static_in, c.static_out, c.static_grad_out, *c.grads):
                if t is not None:
                    storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return sum(storages.values())

    def __reduce__(self):
        return (_empty_copy, (self.warmup, self.max_graphs, type(self.backend), self.backend.min_bytes, self.settings))

    def __deepcopy__(self, memo: Dict[int, Any]) -> "BlockGraphs":
        return _empty_copy(self.warmup, self.max_graphs, type(self.backend), self.backend.min_bytes, self.settings)

    def run(self, blocks: Sequence[nn.Module], x: Tensor, grid: Tuple[int, int],
            run_block: Callable[[nn.Module, Tensor, Tuple[int, int]], Tensor], signature: Hashable = None) -> Tensor:
        """The blocks in order on ``x`` (``[B, N, C]``), replayed from graphs where they can be.

        Args:
            blocks: the blocks (their order is the graphs').
            x: tokens ``[B, N, C]``.
            grid: the spatial token grid ``(h, w)``.
            run_block: how one block runs eagerly (the policy's ``run_block``).
            signature: how the policy runs them now (its per-block plans; other settings get other graphs): part of
                the key.

        Returns:
            ``[B, N, C]``.

        Raises:
            RuntimeError: capturing failed (the error, and how to turn graphs off).
        """
        def eager(tokens: Tensor) -> Tensor:
            for block in blocks:
                tokens = run_block(block, tokens, grid)
            return tokens

        params = tuple({id(p): p for b in blocks for p in b.parameters() if p.requires_grad}.values())
        emulated = isinstance(self.backend, EmulatedGraphBackend)
        if not params or not torch.is_grad_enabled() or not (x.is_cuda or emulated):
            return eager(x)
        key = self._key(blocks, x, grid, params, signature)
        captured = self._captured.get(key)
        if captured is None:
            self._drop_stale(key)  # now, not at the capture: the eager calls before it would run beside their pool
            seen = self._seen.pop(key, 0) + 1
            self._seen[key] = seen
            while len(self._seen) > _SEEN:
                self._seen.popitem(last=False)
            if seen <= self.warmup:
                return eager(x)
            captured = self._capture(key, blocks, x, params, eager)
        if captured.pending():
            self._eager_while_pending += 1
            if self._eager_while_pending in (1, 10, 100, 1000):
                logger.warning("cuda_graphs: %d forward(s) ran eagerly because an earlier forward's backward had "
                               "not run (gradient accumulation, or a kept output or exception)",
                               self._eager_while_pending)
            return eager(x)
        self._captured.move_to_end(key)
        return Replay.apply(captured, x, *captured.params)

    def _key(self, blocks: Sequence[nn.Module], x: Tensor, grid: Tuple[int, int], params: Tuple[Tensor, ...],
             signature: Hashable) -> Tuple[Any, ...]:
        """``(what the input and the blocks are, addresses of the tensors they hold)``."""
        device = x.device.type
        autocast = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        modes = tuple(m.training for b in blocks for m in b.modules())
        base = (tuple(id(b) for b in blocks), modes, tuple(id(p) for p in params), signature, tuple(x.shape),
                x.stride(), x.dtype, x.device, x.requires_grad, tuple(grid), autocast)
        return base, tensors_read(blocks)

    def _drop_stale(self, key: Tuple[Any, ...]) -> None:
        """Drop the graphs of ``key``'s input made stale (weights since moved, plans since changed: never replayed
        again), with their memory pool and host buffers, unless a backward of theirs is pending."""
        for stale in [k for k, c in self._captured.items() if _same_input(k, key) and not c.pending()]:
            del self._captured[stale]

    def _capture(self, key: Tuple[Any, ...], blocks: Sequence[nn.Module], x: Tensor, params: Tuple[Tensor, ...],
                 eager: RunBlocks) -> Captured:
        """Capture the graphs for ``key`` and drop the least recently used beyond :attr:`max_graphs` (stale ones
        went before, :meth:`_drop_stale`).

        Raises:
            RuntimeError: the backend's capture failed.
        """
        static_in = x.detach().clone().requires_grad_(x.requires_grad)
        owners = [m for b in blocks for m in (b, getattr(b, "adapter", None)) if m is not None]
        seeds = torch.randint(0, 2 ** 62, (len(owners),)).tolist()  # from the seeded host generator
        generators = {id(m): torch.Generator(x.device).manual_seed(s) for m, s in zip(owners, seeds)}
        try:
            with autocast_without_cache(x.device.type):
                captured = self.backend.capture(eager, static_in, params, generators)
        except Exception as error:
            raise RuntimeError(f"cuda_graphs: capturing {len(blocks)} blocks on input {tuple(x.shape)} failed "
                               f"({type(error).__name__}: {error}); set backbone custom cuda_graphs=False") from error
        self._captured[key] = captured
        self._seen.pop(key, None)
        while len(self._captured) > self.max_graphs:
            oldest = next(k for k, c in self._captured.items() if not c.pending() or k == key)
            if oldest == key:
                break
            del self._captured[oldest]
        logger.info("cuda_graphs: captured the forward and backward of %d blocks on input %s (%d graphs kept%s)",
                    len(blocks), tuple(x.shape), len(self._captured),
                    f"; {captured.offload.staged_bytes / 2**30:.2f} GiB of saved tensors staged in host memory"
                    if captured.offload is not None and captured.offload.layouts else "")
        return captured


#: position of ``signature`` (the policy's per-block plans) in a key's first part (:meth:`BlockGraphs._key`)
_SIGNATURE = 3


def _same_input(old: Tuple[Any, ...], new: Tuple[Any, ...]) -> bool:
    """Whether two keys are the same blocks on the same input, but for the tensors' addresses and the plans: the
    older graphs are stale (weights moved; the planner re-planned, e.g. once the optimizer's state appeared)."""
    drop = lambda base: base[:_SIGNATURE] + base[_SIGNATURE + 1:]  # noqa: E731
    return drop(old[0]) == drop(new[0])


def _empty_copy(warmup: int, max_graphs: int, backend: type, min_bytes: int, settings: Hashable) -> BlockGraphs:
    graphs = BlockGraphs(warmup=warmup, max_graphs=max_graphs, backend=backend(min_bytes=min_bytes))
    graphs.settings = settings
    return graphs
