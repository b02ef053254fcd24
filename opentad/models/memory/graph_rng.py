"""Random numbers of blocks captured in CUDA graphs (:mod:`.cuda_graphs`).

``torch.utils.checkpoint`` makes a recomputation draw what the forward drew
by saving the generator's state on the host and setting it back; a CUDA
graph cannot capture either. While :class:`~.cuda_graphs.BlockGraphs`
captures, each block and each block's adapter draw instead from a
generator of their own (:func:`checkpoint_bound`, :func:`drawing_for`),
which the graphs set back before the backward replay recomputes. On CUDA
the default generator is pointed at that generator's state
(``graphsafe_set_state``, capturable); on the CPU (the emulating backend of
the tests) its state is swapped in and out.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Dict, Iterator

import torch
import torch.utils.checkpoint as cp
from torch import nn

__all__ = ["bound_generator", "capturing", "checkpoint_bound", "drawing_for"]

_CAPTURE = threading.local()  # .generators: {id(block): generator} while a forward is captured


@contextlib.contextmanager
def _drawing_from(generator: torch.Generator) -> Iterator[None]:
    """Make the default generator of ``generator``'s device draw from ``generator`` inside the block.

    CUDA: the default generator shares ``generator``'s state (``graphsafe_set_state``, capturable).
    CPU: the default generator takes ``generator``'s state, and gives the advanced state back to it after.
    """
    device = generator.device
    if device.type == "cuda":
        default = torch.cuda.default_generators[device.index or 0]
        previous = default.graphsafe_get_state()
        default.graphsafe_set_state(generator)
        try:
            yield
        finally:
            default.graphsafe_set_state(previous)
        return
    previous = torch.random.get_rng_state()
    torch.random.set_rng_state(generator.get_state())
    try:
        yield
    finally:
        generator.set_state(torch.random.get_rng_state())
        torch.random.set_rng_state(previous)


def bound_generator(fn: Callable[..., Any], generator: torch.Generator) -> Callable[..., Any]:
    """``fn`` drawing its random numbers (dropout, stochastic depth) from ``generator``."""
    def run(*args: Any) -> Any:
        with _drawing_from(generator):
            return fn(*args)
    return run


def checkpoint_bound(fn: Callable[..., Any], owner: nn.Module, *args: Any) -> Any:
    """``torch.utils.checkpoint`` of ``fn(*args)`` (non-reentrant), capturable inside a graph.

    Outside a capture: ordinary checkpointing (the host-side RNG state saved and restored). While
    :class:`BlockGraphs` captures a forward: ``fn`` draws from ``owner``'s own generator in forward and in
    recomputation; the graphs set that generator's state back between the two.

    Args:
        fn: the checkpointed function (a block, an adapter).
        owner: the module whose generator it draws from (each block and each block's adapter has one: what
            one checkpoint recomputes must start where its forward started).
        *args: its arguments.
    """
    generators = getattr(_CAPTURE, "generators", None)
    generator = None if generators is None else generators.get(id(owner))
    if generator is None:
        return cp.checkpoint(fn, *args, use_reentrant=False)
    return cp.checkpoint(bound_generator(fn, generator), *args, use_reentrant=False, preserve_rng_state=False)


def drawing_for(owner: nn.Module):
    """While a forward is captured: a context in which ``owner`` draws from its own generator (what the chunked
    backward draws ahead for a block, its stochastic-depth factors). Otherwise: no change."""
    generators = getattr(_CAPTURE, "generators", None)
    generator = None if generators is None else generators.get(id(owner))
    return contextlib.nullcontext() if generator is None else _drawing_from(generator)


@contextlib.contextmanager
def capturing(generators: Dict[int, torch.Generator]) -> Iterator[None]:
    """Inside: a forward is being captured; ``generators`` maps ``id(module)`` to its generator."""
    _CAPTURE.generators = generators
    try:
        yield
    finally:
        _CAPTURE.generators = None
