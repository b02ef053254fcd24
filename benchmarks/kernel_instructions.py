"""Instructions a Triton kernel issues per value, counted in its compiled code on a machine without a GPU.

Usage:
    python tools/count_instructions.py                          # GELU and gelu_backward at g's 6144, 4 warps;
                                                                # the layer norm at g's 1408, 1 warp
    python tools/count_instructions.py --cols 1536 --norm-cols 384 --warps 1,2 --integer

The library's fused activation kernel (:func:`opentad.models.memory.fp8_activation_kernels.gelu_rows_kernel`)
and fused layer norm (:func:`opentad.models.memory.fp8_norm_kernels.layer_norm_rows_kernel`) are each compiled for a CUDA architecture (``triton.compile`` down to a cubin: Triton's own LLVM and ``ptxas``, no
driver needed), with the divisibility-by-16 specialisation Triton's launcher gives aligned pointers and
widths, and its SASS is listed with the ``cuobjdump`` that Triton ships. The kernel has no loops, so every
listed instruction (padding ``NOP``s left out) is issued once per program; divided by the values a program's
threads hold, that is instructions per value. At one instruction per scheduler per cycle the issue time of a
call is ``rows x cols x per-value / (SMs x 4 x 32 x clock)``: a lower bound of the kernel's time that tracked
its measured time at 71-82% on an H100 (docs/benchmarks.md, run 33; moving the bytes took 28-76% of it: the
first kernels were far from the memory's bound, the current ones are near both).
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from typing import Dict, List

__all__ = ["sass_of", "count_sass", "activation_instructions", "norm_instructions", "format_table"]

#: SASS lines: ``/*0a30*/  [@P0] OPCODE.MODIFIERS operands ;``
_LINE = re.compile(r"\s+/\*[0-9a-f]{4,}\*/\s+(@!?U?P\w+\s+)?([A-Z0-9_]+)")


def sass_of(cubin: bytes) -> str:
    """``cuobjdump -sass`` of a cubin, with the ``cuobjdump`` of Triton's NVIDIA backend.

    Raises:
        FileNotFoundError: Triton ships no ``cuobjdump`` here.
    """
    import triton.backends.nvidia as nvidia

    tool = os.path.join(os.path.dirname(nvidia.__file__), "bin", "cuobjdump")
    if not os.path.exists(tool):
        raise FileNotFoundError(f"no cuobjdump at {tool} (Triton's NVIDIA backend ships it)")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        return subprocess.run([tool, "-sass", path], capture_output=True, text=True, check=True).stdout


def count_sass(sass: str) -> Dict[str, int]:
    """Instructions of a SASS listing per opcode (modifiers dropped, ``NOP`` padding left out)."""
    counts: Dict[str, int] = {}
    for line in sass.splitlines():
        match = _LINE.match(line)
        if match and match.group(2) != "NOP":
            counts[match.group(2)] = counts.get(match.group(2), 0) + 1
    return counts


def _compiled_count(fn, signature: Dict[str, str], shape: Dict[str, object], cols: int, warps: int,
                    arch: int) -> Dict[str, object]:
    """Compile ``fn`` with the launcher's divisibility specialisation (the pointers, and the integer arguments
    when ``cols`` is a multiple of 16) and count its SASS: ``dict(instructions, per_value, opcodes)``."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    aligned = [i for i, (name, kind) in enumerate(signature.items())
               if kind.startswith("*") or (cols % 16 == 0 and kind == "i32")]
    source = ASTSource(fn=fn, signature={**signature, **{k: "constexpr" for k in shape}}, constexprs=shape,
                       attrs={(i,): [["tt.divisibility", 16]] for i in aligned})
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options={"num_warps": warps})
    opcodes = count_sass(sass_of(compiled.asm["cubin"]))
    total = sum(opcodes.values())
    return dict(instructions=total, per_value=total * 32 * warps / (shape["PART"] * shape["PARTS"]),
                opcodes=opcodes)


def activation_instructions(cols: int, *, backward: bool, native: bool = True, num_warps: int = 0,
                            arch: int = 90) -> Dict[str, object]:
    """Compile the fused activation kernel for rows of ``cols`` values and count what it issues.

    Args:
        cols: values a row.
        backward: ``gelu_backward``'s kernel, else GELU's.
        native: the GPU's own conversions (the CUDA default), else the integer arithmetic.
        num_warps: warps a program (0: :func:`~opentad.models.memory.fp8_activations.activation_parts`'s).
        arch: the CUDA compute capability compiled for (90: Hopper).

    Returns:
        ``dict(kernel, cols, native, part, parts, warps, instructions, per_value, opcodes)``; ``per_value``
        counts each thread's instructions over the values it holds (idle lanes included).
    """
    from opentad.models.memory.fp8_activation_kernels import gelu_rows_kernel
    from opentad.models.memory.fp8_activations import activation_parts

    part, parts, warps = activation_parts(cols)
    warps = num_warps or warps
    signature = {"g_ptr": "*bf16", "h_ptr": "*bf16", "q_ptr": "*u8", "scale_ptr": "*fp32", "cols": "i32",
                 "g_stride": "i32", "h_stride": "i32", "tiny": "fp32"}
    shape = {"PART": part, "PARTS": parts, "EVEN": part * parts == cols, "BACKWARD": backward, "NATIVE": native}
    return dict(kernel="gelu_backward" if backward else "GELU", cols=cols, native=native, part=part, parts=parts,
                warps=warps, **_compiled_count(gelu_rows_kernel, signature, shape, cols, warps, arch))


def norm_instructions(cols: int, *, native: bool = True, num_warps: int = 0, arch: int = 90) -> Dict[str, object]:
    """:func:`activation_instructions` of the fused layer norm's kernel (``fused_fp8_norms``); same Args but
    ``backward``, same Returns (``kernel`` is ``"layer norm"``)."""
    from opentad.models.memory.fp8_activations import activation_parts
    from opentad.models.memory.fp8_norm_kernels import layer_norm_rows_kernel

    part, parts, warps = activation_parts(cols)
    warps = num_warps or warps
    signature = {"x_ptr": "*bf16", "w_ptr": "*bf16", "b_ptr": "*bf16", "q_ptr": "*u8", "scale_ptr": "*fp32",
                 "mean_ptr": "*fp32", "rstd_ptr": "*fp32", "cols": "i32", "x_stride": "i32", "eps": "fp32",
                 "tiny": "fp32"}
    shape = {"PART": part, "PARTS": parts, "EVEN": part * parts == cols, "NATIVE": native}
    return dict(kernel="layer norm", cols=cols, native=native, part=part, parts=parts, warps=warps,
                **_compiled_count(layer_norm_rows_kernel, signature, shape, cols, warps, arch))


def format_table(results: List[Dict[str, object]], *, rows: int, sms: int, clock_ghz: float) -> str:
    """A markdown table of :func:`activation_instructions` and :func:`norm_instructions` results with each
    call's issue time for ``rows`` rows on ``sms`` SMs at ``clock_ghz``."""
    rate = sms * 4 * 32 * clock_ghz * 1e9  # thread-instructions a second
    lines = [f"Issue time of a call on {rows} rows at {sms} SMs x 4 schedulers x {clock_ghz} GHz", "",
             "| kernel | cols | pieces | warps | conversions | instructions | per value | issue (ms) | most issued |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        top = sorted(r["opcodes"].items(), key=lambda kv: -kv[1])[:4]
        issue = rows * r["cols"] * r["per_value"] / rate * 1e3
        lines.append(f"| {r['kernel']} | {r['cols']} | {r['parts']} x {r['part']} "
                     f"| {r['warps']} | {'native' if r['native'] else 'integer'} | {r['instructions']} "
                     f"| {r['per_value']:.1f} | {issue:.3f} | {', '.join(f'{k} {v}' for k, v in top)} |")
    return "\n".join(lines)
