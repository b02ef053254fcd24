"""``torch.compile`` of the transformer blocks, applied from outside (``MemoryPolicy.compile_blocks``).

Each :class:`~opentad.models.bricks.vit.Block` is compiled in place (the
module tree and state-dict keys do not change): its forward becomes a short
eager step that draws the stochastic-depth factors, then one compiled
function of the block's attention, MLP and adapter (:func:`block_body`),
shared by every block, which takes the block as an argument (so a deep copy
of a compiled model, the EMA's, computes with its own weights). The drop probability grows with depth, and inside
the compiled code it would be a constant: one compilation per block (40 for
ViT-g, each minutes of Inductor time). Drawn outside, it is not in the graph.
The factors are drawn as the eager block draws them (in order, the same
numbers, cast to the branch's dtype: ``DropPath.scales_ahead``), so they are
the same; a block whose attention or MLP itself
uses dropout keeps its draws inside, in eager order, at one compilation per
drop probability. The two pieces the chunked backward calls on their own,
``block.residual`` and ``block.adapter``, are compiled as well; the
residual's recomputation, whose output only carries autograd's graph, in a
variant of its own that leaves out the frozen MLP's ``fc2`` product, as the
eager recomputation does (:func:`~.frozen_mlp.unused_output_mlp`: where
``fc2``'s input gradient has its operands as tensors, a held copy or fp8
"all"'s weights). Whatever the
policy does around a block (non-reentrant checkpointing, the chunked
backward, offloading hooks, ``frozen_dtype``) stays outside the compiled code
and works unchanged.

bitsandbytes' 4-bit weights (``Params4bit``, a tensor subclass) cannot be
traced by Dynamo, so a 4-bit layer's packed matmul runs eagerly (one graph
break at each such layer: qkv, proj, fc1, fc2, the adapter's projections),
unless the memory planner holds a dequantized copy of its weight: then the
layer is a plain ``F.linear`` inside the compiled graph.

One block's code is compiled once per variant it runs in: grad mode,
checkpoint recomputation, held or packed weights, and the memory planner's
profile slices (other row counts). That exceeds Dynamo's default of 8
compilations per function, after which the blocks would silently run eager;
compiling therefore raises ``torch._dynamo.config.recompile_limit`` to
:data:`RECOMPILE_LIMIT` (logged, never lowered), and the policy hints that
a block input's rows (clips) vary (:func:`rows_vary`): one graph serves every
row count instead of one per count.

By default Inductor keeps a fused chain of bf16/fp16 ops in float32 and
rounds once at the end, where eager rounds after every op; compiling turns
on ``torch._inductor.config.emulate_precision_casts`` (logged), which rounds
where eager rounds: a compiled bf16 block then gave the eager output bit for
bit, and under autocast the same parameter gradients, on the CPU (the input
gradient to the order of float32 sums). Random numbers drawn inside compiled
code (LoRA's dropout in the adapter) come from Inductor's own generator
unless ``torch._inductor.config.fallback_random`` is on: compiling turns it
on (logged), so the masks are eager's. On the GPU the seeded loss of a
compiled step still differs from eager's in the 4th to 5th digit (ViT-g,
H100: 0.479539 eager, 0.479361 compiled): an approximate option, opt-in.
These settings are process-wide and stay after the blocks are un-compiled: a
later ``torch.compile`` in the process (of a head, say) rounds as eager too.
"""
from __future__ import annotations

import functools
import logging
import os
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
import torch._inductor.config  # noqa: F401  (torch._inductor.config below)
from torch import nn

from opentad.models.bricks.vit import Block
from opentad.models.memory.frozen_mlp import input_grad_only, recomputing_unused_output, unused_output_mlp

logger = logging.getLogger(__name__)

__all__ = ["COMPILE_MODES", "CUDA_GRAPH_MODES", "OPTION_MODES", "RECOMPILE_LIMIT", "block_body", "check_compile_blocks",
           "compile_blocks", "compile_kwargs", "configure_compiler", "is_compiled", "rows_vary"]

#: modes of this project: ``torch.compile``'s default mode with these Inductor options. ``"multi-kernel"``: each
#: reduction over up to 16384 values a row (norms, the fp8 rows' maxima over 1408 and 6144 channels) is generated
#: both with the row held in registers (one pass over it) and looped (two), and the faster one measured at the
#: first run is kept (Inductor's ``triton.multi_kernel``; by default it keeps rows in registers up to 1024 values)
OPTION_MODES: Dict[str, Dict[str, object]] = {"multi-kernel": {"triton.multi_kernel": 1}}

_MULTI_KERNEL_CACHE = "TORCHINDUCTOR_DISABLE_MULTI_KERNEL_CACHE"

#: the ``mode`` strings that ``compile_blocks`` accepts (besides False and True): ``torch.compile``'s and
#: :data:`OPTION_MODES`
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs") + tuple(OPTION_MODES)

#: modes that capture CUDA graphs, refused: a graph's outputs live in buffers that its next run overwrites, and
#: a checkpointed block runs again (recomputation) while its first outputs are still in use (H100, torch 2.11:
#: "accessing tensor output of CUDAGraphs that has been overwritten by a subsequent run")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")

#: the backend of ``torch.compile`` (tests set ``"aot_eager"``: no C++ toolchain, quick)
BACKEND = "inductor"

#: Dynamo's per-function compilation limit while blocks are compiled
RECOMPILE_LIMIT = 64

#: the compiled functions per (mode, backend), shared by every block: each takes the module as an argument
_COMPILED: Dict[Tuple[Optional[str], str], Dict[str, Callable]] = {}

Scales = Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]


def check_compile_blocks(value: Union[bool, str]) -> None:
    """Raises ValueError unless ``value`` is False, True or one of :data:`COMPILE_MODES`."""
    if value is False or value is True or (isinstance(value, str) and value in COMPILE_MODES):
        return
    if isinstance(value, str) and value in CUDA_GRAPH_MODES:
        raise ValueError(f"compile_blocks={value!r} captures CUDA graphs, whose outputs the next run overwrites while "
                         "a recomputed block still needs them; use True or 'max-autotune-no-cudagraphs' (with cuda_graphs=True "
                         "for graphs of the blocks' forward and backward)")
    valid = ", ".join(repr(v) for v in (False, True) + COMPILE_MODES)
    raise ValueError(f"compile_blocks={value!r} is not valid; valid values: {valid}")


def configure_compiler(limit: int = RECOMPILE_LIMIT) -> None:
    """Raise Dynamo's per-function compilation limit to ``limit`` (kept when already higher) and make Inductor
    round low-precision intermediates and draw random numbers as eager does; each change is logged."""
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    if getattr(config, name) < limit:
        logger.info("compile_blocks: torch._dynamo.config.%s %d -> %d (one compilation per block variant)",
                    name, getattr(config, name), limit)
        setattr(config, name, limit)
    inductor = torch._inductor.config
    for flag, why in (("emulate_precision_casts", "round as eager does"), ("fallback_random", "eager's random masks")):
        if hasattr(inductor, flag) and not getattr(inductor, flag):
            logger.info("compile_blocks: torch._inductor.config.%s -> True (%s)", flag, why)
            setattr(inductor, flag, True)


def rows_vary(x: torch.Tensor, block: Optional[Block] = None) -> torch.Tensor:
    """Hint Dynamo that dim 0 of ``x`` (the rows of a block's input: clips, a profile slice or a row group)
    changes between calls; only when ``block`` is compiled (or None: the caller knows). Returns ``x``."""
    if x.dim() > 0 and (block is None or is_compiled(block)):
        torch._dynamo.maybe_mark_dynamic(x, 0)
    return x


def is_compiled(block: Block) -> bool:
    """Whether :func:`compile_blocks` compiled ``block`` (and has not un-compiled it), or a copy of it."""
    return "_compile_key" in vars(block)


def block_body(block: Block, x: torch.Tensor, grid: Tuple[int, int], scales: Scales) -> torch.Tensor:
    """What a compiled block computes (its hook-free adapter included).

    Args:
        block: the block (an argument: one compiled function serves every block).
        x: tokens ``[B, N, C]``.
        grid: the spatial token grid ``(h, w)``.
        scales: the stochastic-depth factors of the two branches (``[B, 1, 1]`` or None: drawn here).

    Returns:
        ``[B, N, C]``.
    """
    x = type(block).residual(block, x, scales)  # the class's (the instance's is this compiled code)
    return x if block.adapter is None else type(block.adapter).forward(block.adapter, x, grid)


def _adapter_body(adapter: nn.Module, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    return type(adapter).forward(adapter, x, grid)


def _unused_residual_body(block: Block, x: torch.Tensor, scales: Scales) -> torch.Tensor:
    """``block.residual`` for a recomputation whose output only carries the graph: ``fc2``'s product left out."""
    return type(block).residual(block, x, scales, mlp=unused_output_mlp)


def _residual_body(block: Block, x: torch.Tensor, scales: Scales) -> torch.Tensor:
    """``block.residual``: its class's (the instance's own ``residual`` is the compiled function)."""
    return type(block).residual(block, x, scales)


_BODIES = {"block": block_body, "residual": _residual_body, "adapter": _adapter_body,
           "unused_residual": _unused_residual_body}


def _compiled(key: Tuple[Union[bool, str], str], name: str) -> Callable:
    """The compiled ``name`` function for ``key`` = (setting, backend), compiled at first use (in any process:
    an unpickled model finds none compiled yet)."""
    setting, backend = key
    mode = None if setting in (True, "default") else setting
    if (mode, backend) not in _COMPILED:
        _COMPILED[(mode, backend)] = {n: _compile(fn, mode, backend) for n, fn in _BODIES.items()}
    return _COMPILED[(mode, backend)][name]


def _compile(fn: Callable, mode: Optional[str], backend: str) -> Callable:
    """``torch.compile(fn)`` in ``mode`` (:func:`compile_kwargs`)."""
    return torch.compile(fn, **compile_kwargs(mode, backend))


def compile_kwargs(mode: Optional[str], backend: str) -> Dict[str, object]:
    """The keyword arguments of ``torch.compile`` for ``mode``: an :data:`OPTION_MODES` name as Inductor options
    (other backends take none: ``torch.compile``'s default mode there), any other as ``torch.compile``'s mode.

    For ``triton.multi_kernel`` it also sets ``TORCHINDUCTOR_DISABLE_MULTI_KERNEL_CACHE=1`` (once, logged; a value
    already set is kept): torch 2.11 fails reading a multi-kernel's pick back from its cache file with its
    Triton (``TypeError`` in ``MultiKernelCall.cache_file_path``), so each process measures its picks again.
    """
    if mode not in OPTION_MODES:
        return dict(backend=backend, mode=mode)
    options = dict(OPTION_MODES[mode]) if backend == "inductor" else None
    if options and options.get("triton.multi_kernel") and _MULTI_KERNEL_CACHE not in os.environ:
        logger.info("compile mode %r: %s=1 (multi-kernel picks measured in each process)", mode, _MULTI_KERNEL_CACHE)
        os.environ[_MULTI_KERNEL_CACHE] = "1"
    return dict(backend=backend, options=options)


def _hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _compiled_forward(block: Block, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """A compiled block's forward: the stochastic-depth factors drawn eagerly, then the shared compiled body (an
    adapter with forward hooks runs as a module call after the compiled residual, so its hooks run)."""
    scales: Scales = (None, None)
    if not block.residual_dropout():  # else the body draws them, in eager order with the dropout masks
        drawn = (block.drop_path.scales_ahead(x), block.drop_path.scales_ahead(x))
        scales = tuple(None if s is None else rows_vary(s) for s in drawn)
    if block.adapter is not None and _hooked(block.adapter):
        return block.adapter(_compiled(block._compile_key, "residual")(block, x, scales), grid)
    return _compiled(block._compile_key, "block")(block, x, grid, scales)


def _compiled_residual(block: Block, x: torch.Tensor, scales: Scales = (None, None)) -> torch.Tensor:
    """A compiled block's ``residual`` (the chunked backward calls it on row groups; inside its recomputation,
    :func:`~.frozen_mlp.output_unused`, a frozen MLP leaves out ``fc2``'s product, as the eager one does)."""
    unused = recomputing_unused_output() and input_grad_only(block.mlp)
    return _compiled(block._compile_key, "unused_residual" if unused else "residual")(block, x, scales)


def _compiled_adapter(adapter: nn.Module, x: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """A compiled block's adapter's ``forward`` (the chunked backward checkpoints it on its own)."""
    return _compiled(adapter._compile_key, "adapter")(adapter, x, grid)


def _set(block: Block, key: Optional[Tuple[Union[bool, str], str]]) -> None:
    """Compile ``block`` for ``key`` = (setting, backend), or (None) back to eager. All state is the key and
    functions bound to the block and its adapter (``functools.partial`` instance attributes, never in the state
    dict), so a deep copy of the model (the EMA's) computes with its own weights, and a pickled one loads."""
    for name in ("forward", "residual", "_compile_key"):
        block.__dict__.pop(name, None)
    for name in ("forward", "_compile_key") if block.adapter is not None else ():
        block.adapter.__dict__.pop(name, None)
    if key is None:
        return
    block._compile_key = key
    block.forward = functools.partial(_compiled_forward, block)
    block.residual = functools.partial(_compiled_residual, block)
    if block.adapter is not None:
        block.adapter._compile_key = key
        block.adapter.forward = functools.partial(_compiled_adapter, block.adapter)


def compile_blocks(backbone: nn.Module, setting: Union[bool, str]) -> List[str]:
    """Compile (or, with False, un-compile) every transformer block of ``backbone`` in place.

    Compilation itself happens at a block's first call (and again when its
    inputs' shapes, dtypes or grad mode change). Applying the same setting
    again changes nothing.

    Args:
        backbone: a module holding :class:`~opentad.models.bricks.vit.Block` s.
        setting: False, True (``torch.compile``'s defaults) or a mode of :data:`COMPILE_MODES`.

    Returns:
        the names of the blocks whose compilation changed.

    Raises:
        ValueError: a ``setting`` not listed above.
    """
    check_compile_blocks(setting)
    key = None if setting is False else (setting, BACKEND)
    if key is not None:
        configure_compiler()
    changed = []
    for name, block in backbone.named_modules():
        if isinstance(block, Block) and vars(block).get("_compile_key") != key:
            _set(block, key)
            changed.append(name)
    if changed:
        logger.info("compile_blocks=%r: %d blocks %s (%s .. %s; backend %s)", setting, len(changed),
                    "compiled" if setting is not False else "back to eager", changed[0], changed[-1], BACKEND)
    return changed
