"""Two tables of :mod:`benchmarks.kernels`: attention's backends and the compiled fp8 row fusions.

* **attention** (``custom.attention_kernels``): ``scaled_dot_product_attention`` on ``[clips, heads, tokens,
  head dim]`` bf16 (a THUMOS step's clips, or as many as ``--rows`` holds), forward and forward + backward,
  with each backend forced (``sdpa_kernel``): flash, cuDNN, memory-efficient on CUDA; flash and math on the
  CPU. A backend that refuses the inputs is reported as such, not timed.
* **compiled fusions** (``compile_blocks`` with ``frozen_fp8``; ``--fusions``): what Inductor fuses the fp8
  rows' quantization with inside a compiled block (the layer norm before ``qkv`` and ``fc1``, GELU before
  ``fc2``, ``gelu_backward`` before ``fc1``'s input gradient), compiled in ``torch.compile``'s default mode and
  in ``compile_blocks="multi-kernel"``'s Inductor options, and on CUDA the library's one-pass Triton kernels
  (``fused_fp8_norms``' layer norm, ``fused_fp8_mlp``'s GELU and its backward); each fusion returns the quantized
  rows and their scales, and each output is checked against the eager one (within bf16 / fp8 rounding).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from benchmarks.ops import timed
from opentad.models.memory.compile import OPTION_MODES, compile_kwargs
from opentad.models.memory.fp8_rows import quantize_rows_reference

#: size -> (heads, tokens of one clip): 8 x 10 x 10 at 160 px and patch 16; 8 x 11 x 11 for g's patch 14
ATTENTION: Dict[str, Tuple[int, int]] = {"tiny": (2, 64), "s": (6, 800), "b": (12, 800), "l": (16, 800),
                                         "h": (16, 800), "g": (16, 968)}
#: the compile modes of the fusion table: torch.compile's default and this project's Inductor-option modes
FUSION_MODES = ("default",) + tuple(OPTION_MODES)


def _backends(device: torch.device) -> List[Tuple[str, object]]:
    from torch.nn.attention import SDPBackend
    names = ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION") if device.type == "cuda" else \
        ("FLASH_ATTENTION", "MATH")
    return [(n.split("_")[0].lower(), getattr(SDPBackend, n)) for n in names if hasattr(SDPBackend, n)]


def attention_rows(size: str, width: int, rows: int, device: torch.device, repeat: int) -> List[Dict[str, object]]:
    """One row per backend: forward and forward + backward times (ms), or ``refused``."""
    from torch.nn.attention import sdpa_kernel
    heads, tokens = ATTENTION[size]
    clips = max(1, rows // tokens)
    q, k, v = (torch.randn(clips, heads, tokens, width // heads, device=device).to(torch.bfloat16).requires_grad_()
               for _ in range(3))
    grad = torch.randn_like(q)
    out = []
    for name, backend in _backends(device):
        row = dict(size=size, backend=name, shape=(clips, heads, tokens, width // heads))

        def forward():
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, k, v)

        def both():
            torch.autograd.grad(forward(), (q, k, v), grad)

        try:
            with torch.no_grad():
                row["forward_ms"] = timed(forward, repeat, device)
            row["both_ms"] = timed(both, repeat, device)
        except RuntimeError as error:  # "No available kernel": the backend refuses these inputs here
            row["refused"] = str(error).splitlines()[0][:80]
        out.append(row)
    return out


#: the ViTs' layer-norm epsilon
EPS = 1e-6


def _onepass() -> Dict[str, Dict[str, Callable]]:
    """Columns of one-pass Triton kernels, each a function per fusion key, or {} without Triton:
    ``onepass``, the kernels as the library launches them (:mod:`opentad.models.memory.fp8_norm`,
    :mod:`opentad.models.memory.fp8_activations`; on CUDA with the GPU's own bf16 and e4m3 conversions);
    ``integer``, the same with the conversions in integer arithmetic (what Triton's CPU interpreter runs);
    ``2 warps`` and ``8 warps``, the library's with other warps a program; ``floor``, :func:`traffic_copy` (moves as many bytes as the fusion must and computes
    nothing: the bandwidth floor; not compared)."""
    try:
        from opentad.models.memory.fp8_activations import launch_gelu_rows
        from opentad.models.memory.fp8_norm import launch_layer_norm_rows
    except ImportError:
        return {}

    def columns(**launch):
        return {"norm": lambda x, w, b: launch_layer_norm_rows(x, w, b, EPS, **launch)[:2],
                "gelu": lambda h: launch_gelu_rows(h, **launch),
                "gelu_backward": lambda g, h: launch_gelu_rows(h, grad=g, **launch)}

    return {"onepass": columns(),
            "integer": columns(native_casts=False),
            "2 warps": columns(num_warps=2),
            "8 warps": columns(num_warps=8),
            FLOOR: {"norm": traffic_copy, "gelu": traffic_copy, "gelu_backward": traffic_copy}}


_COPIES: Dict[Tuple[int, str], Tuple[torch.Tensor, torch.Tensor]] = {}


def traffic_copy(*inputs: torch.Tensor) -> torch.Tensor:
    """One device copy that reads and writes as many bytes as a fusion of ``inputs`` must move: every input read
    once, the e4m3 rows (1 byte per value of the first input ``[R, K]``) and float32 scales (``[R, 1]``) written
    once; the copy reads and writes half of that sum each. Its buffers are made at the first call per size."""
    rows, cols = inputs[0].shape
    moved = sum(t.numel() * t.element_size() for t in inputs) + rows * cols + 4 * rows
    key = (moved // 2, str(inputs[0].device))
    if key not in _COPIES:
        _COPIES[key] = tuple(torch.empty(key[0], dtype=torch.uint8, device=inputs[0].device) for _ in range(2))
    source, target = _COPIES[key]
    return target.copy_(source)


#: the column of :func:`_onepass` whose values are not compared (a cast, not the fusion)
FLOOR = "floor"


def _fusions(width: int, hidden: int, rows: int, make: Callable) -> List[Tuple[str, str, Callable, Tuple]]:
    """Each fusion as (name, key, function, its inputs at g's shapes), made by ``make(*shape)``; each returns
    what the block's next product takes: the quantized rows and their scales (the block keeps neither the
    norm's nor GELU's bf16 output: the frozen products' input gradients need only their weights)."""
    def norm(x, w, b):
        return quantize_rows_reference(F.layer_norm(x, (width,), w, b, EPS))

    def gelu(h):
        return quantize_rows_reference(F.gelu(h))

    def gelu_backward(g, h):
        return quantize_rows_reference(torch.ops.aten.gelu_backward(g, h))

    return [(f"layer norm + fp8 rows, {width}", "norm", norm, (make(rows, width), make(width), make(width))),
            (f"GELU + fp8 rows, {hidden}", "gelu", gelu, (make(rows, hidden),)),
            (f"gelu_backward + fp8 rows, {hidden}", "gelu_backward", gelu_backward,
             (make(rows, hidden), make(rows, hidden)))]


def _close(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Equal within rounding: e4m3 values within one step (2^-3 relative, 2^-9 among subnormals: a near-tie
    rounds either way when the row's scale moved by an ulp), float32 row scales and bf16 values within one bf16
    step (2^-7 relative: a step at the bottom of a binade)."""
    fp8 = want.dtype == torch.float8_e4m3fn
    rtol, atol = (2.0**-3, 2.0**-9) if fp8 else (2.0**-7, 0.0)
    return got.dtype == want.dtype and torch.allclose(got.float(), want.float(), rtol=rtol, atol=atol)


def fusion_rows(size: str, width: int, hidden: int, rows: int, device: torch.device, repeat: int,
                compile_fn: Optional[Callable] = None,
                onepass: Optional[Dict[str, Dict[str, Callable]]] = None) -> List[Dict[str, object]]:
    """One row per fusion: its time (ms) per compile mode and whether the compiled outputs match eager's.

    ``compile_fn(fn, mode)`` compiles (default: ``torch.compile`` with the mode's Inductor options as
    ``compile_blocks`` passes them, :func:`~opentad.models.memory.compile.compile_kwargs`, and no FX graph
    cache, so each mode compiles anew); ``onepass``: columns of their own, each a function per fusion key
    (``norm``, ``gelu``, ``gelu_backward``) timed and checked (default: :func:`_onepass`'s Triton kernels on
    CUDA, none elsewhere: Triton's CPU interpreter is too slow to time); the tests pass their own."""
    if compile_fn is None:
        def compile_fn(fn, mode):
            kwargs = compile_kwargs(None if mode == "default" else mode, "inductor")
            options = {"fx_graph_cache": False, **(kwargs.pop("options", None) or {})}
            return torch.compile(fn, backend="inductor", options=options, dynamic=False)
    gen = torch.Generator().manual_seed(0)

    def make(*shape):
        return torch.randn(*shape, generator=gen).to(device=device, dtype=torch.bfloat16)

    if onepass is None:
        onepass = _onepass() if device.type == "cuda" else {}
    out = []
    for name, key, fn, args in _fusions(width, hidden, rows, make):
        want = fn(*args)
        row = dict(size=size, fusion=name, rows=rows)
        for mode in FUSION_MODES:
            torch._dynamo.reset()
            compiled = compile_fn(fn, mode)
            row[f"{mode}_matches"] = all(_close(g, w) for g, w in zip(compiled(*args), want))
            row[f"{mode}_ms"] = timed(lambda: compiled(*args), repeat, device)
        for column, functions in onepass.items():
            if key not in functions:
                continue
            if column != FLOOR:
                row[f"{column}_matches"] = all(_close(g, w) for g, w in zip(functions[key](*args), want))
            row[f"{column}_ms"] = timed(lambda: functions[key](*args), repeat, device)
        row["columns"] = list(FUSION_MODES) + [c for c in onepass if f"{c}_ms" in row]
        out.append(row)
    torch._dynamo.reset()
    return out


def print_tables(attention: List[Dict[str, object]], fusions: List[Dict[str, object]]) -> None:
    """The two tables in Markdown."""
    print("\n| size | [clips, heads, tokens, head dim] | backend | forward (ms) | forward + backward (ms) |")
    print("| --- | --- | --- | --- | --- |")
    for r in attention:
        timing = f"refused: {r['refused']} | |" if "refused" in r else f"{r['forward_ms']:.3f} | {r['both_ms']:.3f} |"
        print(f"| {r['size']} | {list(r['shape'])} | {r['backend']} | {timing}")
    if not fusions:
        return
    modes = []
    for r in fusions:
        modes += [c for c in r.get("columns", FUSION_MODES) if c not in modes]
    print("\n| size | compiled fusion | rows | " + " | ".join(f"{m} (ms)" for m in modes) + " | same values |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in modes) + " | --- |")
    for r in fusions:
        same = all(r.get(f"{m}_matches", True) for m in modes)
        print(f"| {r['size']} | {r['fusion']} | {r['rows']} | "
              + " | ".join(f"{r[f'{m}_ms']:.3f}" if f"{m}_ms" in r else "-" for m in modes)
              + f" | {'yes' if same else 'NO'} |")
