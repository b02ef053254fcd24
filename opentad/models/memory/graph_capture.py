"""Capturing and replaying one stack of blocks (:mod:`.cuda_graphs`): static buffers, two graphs, one autograd node.

:class:`CudaGraphBackend` captures a forward and its backward as two CUDA
graphs sharing one memory pool; :class:`EmulatedGraphBackend` does the same
by running eagerly into the same static buffers (the CPU tests). Both give
a :class:`Captured`, which :class:`Replay` (an autograd Function) replays.
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

from .graph_offload import GraphOffload
from .graph_rng import capturing

__all__ = ["Captured", "CudaGraphBackend", "EmulatedGraphBackend", "Replay", "autocast_without_cache"]

RunBlocks = Callable[[Tensor], Tensor]


class Captured:
    """One input's graphs: static buffers, the two replays and the generators of the captured blocks.

    Args:
        static_in: the graphs' input ``[B, N, C]`` (each forward copies the tokens into it).
        static_out: the forward graph's output ``[B, N, C]`` (valid until the next replay).
        static_grad_out: the backward graph's incoming gradient, shaped as ``static_out``.
        params: the trainable parameters the backward graph differentiates, in the captured order.
        grads: the backward graph's gradients of ``params`` (then of ``static_in`` when it requires grad);
            None where one is unused.
        generators: ``{id(module): generator}`` of the captured blocks and adapters (:mod:`.graph_rng`).
        replay_forward: replays the forward graph.
        replay_backward: replays the backward graph.
        keep: what must live as long as the replays (the graphs, and with them their memory pool).
        offload: the staged offloading of the captured blocks (its host buffers live as long as the replays).
    """

    def __init__(self, *, static_in: Tensor, static_out: Tensor, static_grad_out: Tensor, params: Tuple[Tensor, ...],
                 grads: Tuple[Optional[Tensor], ...], generators: Dict[int, torch.Generator],
                 replay_forward: Callable[[], None], replay_backward: Callable[[], None], keep: Any = None,
                 offload: Optional[GraphOffload] = None):
        self.static_in, self.static_out, self.static_grad_out = static_in, static_out, static_grad_out
        self.params, self.grads, self.generators = params, grads, generators
        self.replay_forward, self.replay_backward, self.keep = replay_forward, replay_backward, keep
        self.offload = offload
        self.states: Dict[int, Tensor] = {}  # each generator's state when the last replayed forward began
        self._pending: Optional[weakref.ref] = None

    def pending(self) -> bool:
        """Whether a replayed forward still waits for its backward (its autograd node is alive)."""
        return self._pending is not None and self._pending() is not None

    def forward(self, x: Tensor, node: Any) -> Tensor:
        """Replay the forward on ``x`` ``[B, N, C]``; ``node`` is the autograd node whose backward follows.

        Returns:
            the static output ``[B, N, C]`` (detached; overwritten by the next replay).
        """
        self.static_in.copy_(x)
        self.states = {owner: g.get_state() for owner, g in self.generators.items()}
        self.replay_forward()
        self._pending = weakref.ref(node)
        return self.static_out.detach()

    def backward(self, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        """Replay the backward for the output's gradient ``grad`` ``[B, N, C]``.

        Returns:
            fresh copies of the gradients (autograd keeps a lone incoming gradient as ``.grad`` itself, which the
            next replay would overwrite), in the order of ``grads``.
        """
        self.static_grad_out.copy_(grad)
        for owner, generator in self.generators.items():
            generator.set_state(self.states[owner])  # the recomputation draws what the forward drew
        self.replay_backward()
        self._pending = None
        return tuple(None if g is None else g.clone() for g in self.grads)


class Replay(torch.autograd.Function):
    """The captured blocks as one autograd node: forward and backward each replay a graph.

    ``apply(captured, x, *captured.params)``: ``x`` ``[B, N, C]`` -> ``[B, N, C]``.
    """

    @staticmethod
    def forward(ctx, captured: Captured, x: Tensor, *params: Tensor) -> Tensor:
        ctx.captured, ctx.x_grad = captured, x.requires_grad
        return captured.forward(x, ctx)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grads = ctx.captured.backward(grad)
        if ctx.x_grad:
            return (None, grads[-1], *grads[:-1])
        return (None, None, *grads)


def _inputs(static_in: Tensor, params: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    return params + ((static_in,) if static_in.requires_grad else ())


def _warm_up(run: RunBlocks, static_in: Tensor, inputs: Tuple[Tensor, ...], offload: GraphOffload) -> None:
    """One eager forward and backward before capture: lazy state made, and what offloading blocks will stage noted
    (``offload``'s layouts); the backward keeps its saved tensors in place (:meth:`GraphOffload.kept`)."""
    with offload.active("measure"):
        out = run(static_in)
    with offload.kept():
        torch.autograd.grad(out, inputs, torch.ones_like(out), allow_unused=True)


class CudaGraphBackend:
    """Captures a forward and its backward as two CUDA graphs sharing one memory pool, on one side stream per
    device (reused by every capture).

    Args:
        min_bytes: offloading blocks stage saved tensors from this size on (:class:`GraphOffload`).
    """

    def __init__(self, *, min_bytes: int = 1 << 20) -> None:
        self.min_bytes = min_bytes
        self._streams: Dict[torch.device, Any] = {}

    def capture(self, run: RunBlocks, static_in: Tensor, params: Tuple[Tensor, ...],
                generators: Dict[int, torch.Generator]) -> Captured:
        """Capture ``run(static_in)`` and the gradients of ``params`` (and of ``static_in`` when it requires grad).

        Args:
            run: the blocks, eagerly: ``[B, N, C]`` -> ``[B, N, C]``.
            static_in: the graphs' input (on a CUDA device).
            params: the trainable parameters.
            generators: the captured modules' generators (registered with both graphs where torch needs it).

        Returns:
            the :class:`Captured` graphs.

        Raises:
            RuntimeError: what the capture raised (an operation that cannot be captured).
        """
        device, inputs, offload = static_in.device, _inputs(static_in, params), GraphOffload(min_bytes=self.min_bytes)
        forward_graph, backward_graph = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        for graph in (forward_graph, backward_graph):
            register = getattr(graph, "register_generator_state", None)  # newer torch registers on first use
            for generator in generators.values() if register is not None else ():
                register(generator)
        stream = self._streams.setdefault(device, torch.cuda.Stream(device))
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):  # lazy per-stream state (cuBLAS workspaces) before capture
            _warm_up(run, static_in, inputs, offload)
        torch.cuda.current_stream(device).wait_stream(stream)
        offload.allocate(device)
        # thread_local: other threads' CUDA calls (a DataLoader's pin-memory thread) may go on during capture
        with capturing(generators):
            with torch.cuda.graph(forward_graph, stream=stream, capture_error_mode="thread_local"):
                with offload.active("capture"):
                    static_out = run(static_in)
            static_grad_out = torch.empty_like(static_out)
            with torch.cuda.graph(backward_graph, pool=forward_graph.pool(), stream=stream,
                                  capture_error_mode="thread_local"), offload.kept():
                grads = torch.autograd.grad(static_out, inputs, static_grad_out, allow_unused=True)
                offload.join()
        return Captured(static_in=static_in, static_out=static_out, static_grad_out=static_grad_out, params=params,
                        grads=grads, generators=generators, replay_forward=forward_graph.replay,
                        replay_backward=backward_graph.replay, keep=(forward_graph, backward_graph), offload=offload)


class EmulatedGraphBackend:
    """What :class:`CudaGraphBackend` does, by running eagerly into the same static buffers (any device).

    For tests of everything around the graphs (keys, warm-up, pending backwards, generator states, staged
    offloading) where there is no GPU: each "replay" recomputes ``run`` on the static input and copies into the
    static outputs. Its :class:`GraphOffload` stages CPU tensors too, from ``min_bytes`` on.
    :meth:`capture` takes :meth:`CudaGraphBackend.capture`'s arguments; ``captures`` counts its calls.
    """

    def __init__(self, *, min_bytes: int = 1 << 20) -> None:
        self.captures, self.min_bytes = 0, min_bytes

    def capture(self, run: RunBlocks, static_in: Tensor, params: Tuple[Tensor, ...],
                generators: Dict[int, torch.Generator]) -> Captured:
        """See :meth:`CudaGraphBackend.capture`."""
        self.captures += 1
        offload = GraphOffload(min_bytes=self.min_bytes, force=True)
        live: Dict[str, Tensor] = {}
        inputs = _inputs(static_in, params)
        _warm_up(run, static_in, inputs, offload)
        offload.allocate(static_in.device)
        with capturing(generators), offload.active("capture"):
            out = run(static_in)
        with offload.kept():
            found = torch.autograd.grad(out, inputs, torch.ones_like(out), allow_unused=True)
        static_out, static_grad_out = out.detach().clone(), torch.empty_like(out)
        grads = tuple(None if g is None else torch.zeros_like(g) for g in found)

        def replay_forward() -> None:
            with torch.enable_grad(), capturing(generators), offload.active("capture"):
                live["out"] = run(static_in)
            static_out.copy_(live["out"])

        def replay_backward() -> None:
            found = torch.autograd.grad(live.pop("out"), inputs, static_grad_out, allow_unused=True)
            for into, got in zip(grads, found):
                if into is not None:
                    into.copy_(got)

        return Captured(static_in=static_in, static_out=static_out, static_grad_out=static_grad_out, params=params,
                        grads=grads, generators=generators, replay_forward=replay_forward,
                        replay_backward=replay_backward, offload=offload)


def autocast_without_cache(device_type: str):
    """The current autocast state with its cast cache off (a cached cast made outside a capture would be freed
    when the caller's autocast region ends, under the graph that reads it)."""
    if not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.get_autocast_dtype(device_type), cache_enabled=False)
