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
the tests), nothing in the blocks trains, a graph's backward of an earlier
forward is still pending (a second forward before backward: gradient
accumulation), or capture failed for this input (logged once, with the
error).

Not with offloading: copies into pinned host memory cannot be captured, so
the memory planner does not offload when graphs are on and the policy
refuses ``offload_activations`` without a budget.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .graph_rng import capturing

logger = logging.getLogger(__name__)

__all__ = ["BlockGraphs", "CudaGraphBackend", "EmulatedGraphBackend"]

RunBlocks = Callable[[Tensor], Tensor]

class _Captured:
    """One input's graphs: static buffers, the two replays and the per-block generators."""

    def __init__(self, *, static_in: Tensor, static_out: Tensor, static_grad_out: Tensor,
                 inputs: Tuple[Tensor, ...], grads: Tuple[Optional[Tensor], ...],
                 generators: Dict[int, torch.Generator],
                 replay_forward: Callable[[], None], replay_backward: Callable[[], None], keep: Any = None):
        self.static_in, self.static_out, self.static_grad_out = static_in, static_out, static_grad_out
        self.inputs, self.grads, self.generators = inputs, grads, generators
        self.replay_forward, self.replay_backward = replay_forward, replay_backward
        self.keep = keep  # the graphs themselves (their memory pool lives as long as they do)
        self.states: Dict[int, Tensor] = {}  # each generator's state when the last replayed forward began
        self._pending: Optional[weakref.ref] = None

    def pending(self) -> bool:
        """Whether a replayed forward still waits for its backward (its autograd node is alive)."""
        return self._pending is not None and self._pending() is not None

    def forward(self, x: Tensor, node: Any) -> Tensor:
        self.static_in.copy_(x)
        self.states = {owner: g.get_state() for owner, g in self.generators.items()}
        self.replay_forward()
        self._pending = weakref.ref(node)
        return self.static_out.detach()

    def backward(self, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        self.static_grad_out.copy_(grad)
        for owner, generator in self.generators.items():
            generator.set_state(self.states[owner])  # the recomputation draws what the forward drew
        self.replay_backward()
        self._pending = None
        # copies: autograd keeps a lone incoming gradient as ``.grad`` itself, which the next replay would overwrite
        return tuple(None if g is None else g.clone() for g in self.grads)


class _Replay(torch.autograd.Function):
    """The captured blocks as one autograd node: forward and backward each replay a graph."""

    @staticmethod
    def forward(ctx, captured: _Captured, x: Tensor, *params: Tensor) -> Tensor:
        ctx.captured, ctx.x_grad = captured, x.requires_grad
        return captured.forward(x, ctx)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grads = ctx.captured.backward(grad)
        if ctx.x_grad:
            return (None, grads[-1], *grads[:-1])
        return (None, None, *grads)


class CudaGraphBackend:
    """Captures a forward and its backward as two CUDA graphs sharing one memory pool."""

    def capture(self, run: RunBlocks, static_in: Tensor, inputs: Tuple[Tensor, ...],
                generators: Dict[int, torch.Generator]) -> _Captured:
        """Graphs of ``run(static_in)`` and of the gradients of ``inputs`` (params, then ``static_in`` when it
        requires grad); ``generators`` are registered with both graphs."""
        device = static_in.device
        forward_graph, backward_graph = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        for graph in (forward_graph, backward_graph):
            register = getattr(graph, "register_generator_state", None)  # newer torch registers on first use
            for generator in generators.values() if register is not None else ():
                register(generator)
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):  # lazy per-stream state (cuBLAS workspaces) before capture
            out = run(static_in)
            torch.autograd.grad(out, inputs, torch.ones_like(out), allow_unused=True)
            del out
        torch.cuda.current_stream(device).wait_stream(stream)
        with capturing(generators):
            with torch.cuda.graph(forward_graph, stream=stream):
                static_out = run(static_in)
            static_grad_out = torch.empty_like(static_out)
            with torch.cuda.graph(backward_graph, pool=forward_graph.pool(), stream=stream):
                grads = torch.autograd.grad(static_out, inputs, static_grad_out, allow_unused=True)
        return _Captured(static_in=static_in, static_out=static_out, static_grad_out=static_grad_out, inputs=inputs,
                         grads=grads, generators=generators, replay_forward=forward_graph.replay,
                         replay_backward=backward_graph.replay, keep=(forward_graph, backward_graph))


class EmulatedGraphBackend:
    """What :class:`CudaGraphBackend` does, by running eagerly into the same static buffers (any device).

    For tests of everything around the graphs (keys, warm-up, pending backwards, generator states) where
    there is no GPU: each "replay" recomputes ``run`` on the static input and copies into the static outputs.
    """

    def __init__(self) -> None:
        self.captures = 0

    def capture(self, run: RunBlocks, static_in: Tensor, inputs: Tuple[Tensor, ...],
                generators: Dict[int, torch.Generator]) -> _Captured:
        self.captures += 1
        live: Dict[str, Tensor] = {}
        with capturing(generators):
            out = run(static_in)
            found = torch.autograd.grad(out, inputs, torch.ones_like(out), allow_unused=True)
        static_out, static_grad_out = out.detach().clone(), torch.empty_like(out)
        grads = tuple(None if g is None else torch.zeros_like(g) for g in found)

        def replay_forward() -> None:
            with torch.enable_grad(), capturing(generators):
                live["out"] = run(static_in)
            static_out.copy_(live["out"])

        def replay_backward() -> None:
            found = torch.autograd.grad(live.pop("out"), inputs, static_grad_out, allow_unused=True)
            for into, got in zip(grads, found):
                if into is not None:
                    into.copy_(got)

        return _Captured(static_in=static_in, static_out=static_out, static_grad_out=static_grad_out, inputs=inputs,
                         grads=grads, generators=generators, replay_forward=replay_forward,
                         replay_backward=replay_backward)


def _autocast_without_cache(device_type: str):
    """The current autocast state with its cast cache off (a cached cast made outside a capture would be freed
    when the caller's autocast region ends, under the graph that reads it)."""
    if not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.get_autocast_dtype(device_type), cache_enabled=False)


def _tensors_read(blocks: Sequence[nn.Module]) -> Tuple[int, ...]:
    """The addresses of every tensor the blocks' modules hold (parameters, buffers, and cached copies kept as
    attributes: held dequantized weights, fp8 weights): a graph reads them where they were at capture."""
    found: List[int] = []
    for block in blocks:
        for module in block.modules():
            for value in list(module._parameters.values()) + list(module._buffers.values()):
                if value is not None:
                    found.append(value.data_ptr())
            for value in vars(module).values():
                for item in value if isinstance(value, tuple) else (value,):
                    if isinstance(item, Tensor):
                        found.append(item.data_ptr())
    return tuple(found)


class BlockGraphs:
    """Captured graphs of a stack of blocks, per input; :meth:`run` replays them (see the module docstring).

    Args:
        warmup: eager calls with an input before its graphs are captured.
        max_graphs: inputs whose graphs are kept (each keeps its memory pool); the least recently used goes.
        backend: :class:`CudaGraphBackend` (None) or :class:`EmulatedGraphBackend` (tests, any device).

    Raises:
        ValueError: ``warmup`` below 0 or ``max_graphs`` below 1.
    """

    def __init__(self, *, warmup: int = 2, max_graphs: int = 2, backend: Any = None):
        if warmup < 0 or max_graphs < 1:
            raise ValueError(f"BlockGraphs: warmup={warmup} must be >= 0 and max_graphs={max_graphs} >= 1")
        self.warmup, self.max_graphs = warmup, max_graphs
        self.backend = CudaGraphBackend() if backend is None else backend
        self._captured: "collections.OrderedDict[Tuple[Any, ...], _Captured]" = collections.OrderedDict()
        self._seen: Dict[Tuple[Any, ...], int] = {}
        self._told_pending = False

    def __len__(self) -> int:
        return len(self._captured)

    def run(self, blocks: Sequence[nn.Module], x: Tensor, grid: Tuple[int, int],
            run_block: Callable[[nn.Module, Tensor, Tuple[int, int]], Tensor]) -> Tensor:
        """The blocks in order on ``x`` (``[B, N, C]``), replayed from graphs where they can be.

        Args:
            blocks: the blocks (their order is the graphs').
            x: tokens ``[B, N, C]``.
            grid: the spatial token grid ``(h, w)``.
            run_block: how one block runs eagerly (the policy's ``run_block``).

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
        key = self._key(blocks, x, grid)
        captured = self._captured.get(key)
        if captured is None:
            self._seen[key] = self._seen.get(key, 0) + 1
            if self._seen[key] <= self.warmup:
                return eager(x)
            captured = self._capture(key, blocks, x, params, eager)
        if captured.pending():
            if not self._told_pending:
                logger.info("cuda_graphs: a second forward before the first one's backward runs eagerly")
                self._told_pending = True
            return eager(x)
        self._captured.move_to_end(key)
        return _Replay.apply(captured, x, *params)

    def _key(self, blocks: Sequence[nn.Module], x: Tensor, grid: Tuple[int, int]) -> Tuple[Any, ...]:
        device = x.device.type
        autocast = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        base = (tuple(id(b) for b in blocks), tuple(b.training for b in blocks), tuple(x.shape), x.stride(), x.dtype,
                x.device, x.requires_grad, tuple(grid), autocast)
        return base, _tensors_read(blocks)

    def _capture(self, key: Tuple[Any, ...], blocks: Sequence[nn.Module], x: Tensor, params: Tuple[Tensor, ...],
                 eager: RunBlocks) -> _Captured:
        static_in = x.detach().clone().requires_grad_(x.requires_grad)
        inputs = params + ((static_in,) if x.requires_grad else ())
        owners = [m for b in blocks for m in (b, getattr(b, "adapter", None)) if m is not None]
        seeds = torch.randint(0, 2 ** 62, (len(owners),)).tolist()  # from the seeded host generator
        generators = {id(m): torch.Generator(x.device).manual_seed(s) for m, s in zip(owners, seeds)}
        try:
            with _autocast_without_cache(x.device.type):
                captured = self.backend.capture(eager, static_in, inputs, generators)
        except Exception as error:
            raise RuntimeError(f"cuda_graphs: capturing {len(blocks)} blocks on input {tuple(x.shape)} failed "
                               f"({type(error).__name__}: {error}); set backbone custom cuda_graphs=False") from error
        for stale in [k for k, c in self._captured.items() if k[0] == key[0] and not c.pending()]:
            del self._captured[stale]  # the same input with weights since moved (held copies made anew): never again
        self._captured[key] = captured
        while len(self._captured) > self.max_graphs:
            oldest = next(k for k, c in self._captured.items() if not c.pending() or k == key)
            if oldest == key:
                break
            del self._captured[oldest]
        logger.info("cuda_graphs: captured the forward and backward of %d blocks on input %s (%d graphs kept)",
                    len(blocks), tuple(x.shape), len(self._captured))
        return captured
