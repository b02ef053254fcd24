"""Speed of the memory policy's own kernels at a ViT's shapes, as Markdown tables.

Usage:
    python tools/benchmark_kernels.py --sizes g          # CUDA when available
    python tools/benchmark_kernels.py --sizes s,g --repeat 20
    python tools/benchmark_kernels.py --device cpu --sizes tiny --repeat 2   # a smoke run

Three tables (five with those below), each with the median of ``--repeat`` timed calls after warm-up calls:

* **fp8 products** (``custom.frozen_fp8``): each frozen 4-bit layer of one block (``qkv``, ``proj``,
  ``fc1``, ``fc2``) called on ``[rows, K]`` bf16 tokens without autograd, with its bf16 weight held (the
  fastest bf16 product) against its fp8 product (the row quantizer plus ``torch._scaled_mm``), with the
  relative error (Frobenius norm) of each against the float32 product of the same weight; then the forward
  with the input's gradient: bf16, fp8 forward (``"forward"``), fp8 forward and backward (``"all"``).
* **row quantizer**: :func:`~opentad.models.memory.fp8_rows.quantize_rows` (the Triton kernel) against the
  PyTorch reference, per block input width.
* **fused adapter residual** (``custom.fused_residual``): forward and backward of ``up * gamma + x`` cast to
  bf16, eager against the kernel on ``[clips, tokens, C]``, and the host time per forward call on a tiny
  tensor (what a launch-bound step pays per call).

Then the attention backends and (``--fusions``) the compiled fp8 row fusions: :mod:`benchmarks.kernels_fused`.

Rows: ``clips x tokens`` of a THUMOS config's step (96 clips of 8 x 10 x 10 tokens at 160 px, patch 16;
11 x 11 for the g ViT's patch 14), or ``--rows``.
"""
from __future__ import annotations

import argparse
import platform
import time
from typing import Dict, List, Tuple

import torch
from torch import nn

from benchmarks import kernels_fused
from benchmarks.ops import timed  # median ms, the device synchronised around each call
from opentad.models.bricks.quant import QuantSpec, quantize_linear
from opentad.models.memory import fp8_matmul as F8
from opentad.models.memory import fp8_rows as R8
from opentad.models.memory.dequant_cache import hold_dequantized
from opentad.models.memory.fused_residual import fused_scaled_residual

#: size -> (width C, MLP width, rows of one step)
SIZES: Dict[str, Tuple[int, int, int]] = {
    "tiny": (64, 256, 512), "s": (384, 1536, 76800), "b": (768, 3072, 76800), "l": (1024, 4096, 76800),
    "h": (1280, 5120, 76800), "g": (1408, 6144, 92928),
}


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want).norm() / want.norm().clamp(min=1e-30))


def fp8_rows(size: str, rows: int, device: torch.device, repeat: int) -> List[Dict[str, object]]:
    """One row per frozen layer of a block: bf16 (held weight) against fp8 forward time and error."""
    width, hidden, _ = SIZES[size]
    out = []
    gen = torch.Generator().manual_seed(0)
    for name, k, m in (("qkv", width, 3 * width), ("proj", width, width), ("fc1", width, hidden),
                       ("fc2", hidden, width)):
        layer = quantize_linear(nn.Linear(k, m), QuantSpec(compute_dtype=torch.bfloat16)).to(device)
        hold_dequantized(layer, True, torch.bfloat16)
        x = torch.randn(rows, k, generator=gen).to(device=device, dtype=torch.bfloat16)
        x_grad = x.detach().requires_grad_(True)
        grad = torch.randn(rows, m, generator=gen).to(device=device, dtype=torch.bfloat16)

        def step():  # forward and the backward product to the input
            return torch.autograd.grad(layer(x_grad), x_grad, grad)

        with torch.no_grad():
            want = x.float() @ layer.held_weight.float().t() + layer.bias.float()
        row = dict(size=size, layer=name, k=k, m=m, rows=rows)
        for mode, key in ((False, "bf16"), ("forward", "fp8"), ("all", "fp8_all")):
            F8.set_fp8_products(layer, mode)
            with torch.no_grad():
                row[f"{key}_ms"] = timed(lambda: layer(x), repeat, device)
                row[f"{key}_err"] = _relative(layer(x), want)
            row[f"{key}_step_ms"] = timed(step, repeat, device)
        out.append(row)
    return out


def quantizer_rows(size: str, rows: int, device: torch.device, repeat: int) -> List[Dict[str, object]]:
    """The row quantizer (Triton where it runs) against the PyTorch reference, for both block input widths."""
    width, hidden, _ = SIZES[size]
    out = []
    for k in (width, hidden):
        x = torch.randn(rows, k, device=device).to(torch.bfloat16)
        out.append(dict(size=size, k=k, rows=rows, kernel_ms=timed(lambda: R8.quantize_rows(x), repeat, device),
                        reference_ms=timed(lambda: R8.quantize_rows_reference(x), repeat, device)))
    return out


def residual_rows(size: str, rows: int, device: torch.device, repeat: int) -> Dict[str, object]:
    """The adapter residual's forward + backward, eager against fused, and the host time per forward call."""
    width = SIZES[size][0]
    gamma = torch.tensor([0.1], device=device, requires_grad=True)
    up, x = (torch.randn(rows, width, device=device).to(torch.bfloat16).requires_grad_(True) for _ in range(2))
    grad = torch.randn(rows, width, device=device).to(torch.bfloat16)

    def eager():
        torch.autograd.grad((up * gamma + x).to(torch.bfloat16), (up, gamma, x), grad)

    def fused():
        torch.autograd.grad(fused_scaled_residual(up, gamma, x).to(torch.bfloat16), (up, gamma, x), grad)

    small_up, small_x = up.detach()[:16], x.detach()[:16]
    host = {}
    for name, fn in (("eager", lambda: (small_up * gamma.detach() + small_x).to(torch.bfloat16)),
                     ("fused", lambda: fused_scaled_residual(small_up, gamma.detach(), small_x))):
        for _ in range(20):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(500):
            fn()
        host[name] = (time.perf_counter() - start) / 500 * 1e6  # launches queued, not waited for
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return dict(size=size, rows=rows, width=width, eager_ms=timed(eager, repeat, device),
                fused_ms=timed(fused, repeat, device), eager_host_us=host["eager"], fused_host_us=host["fused"])


def run(args: argparse.Namespace) -> Dict[str, List[Dict[str, object]]]:
    """Measure and print the tables for ``args`` (the tool's options); returns their rows."""
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    result = dict(fp8=[], quantizer=[], residual=[], attention=[], fusions=[])
    for size in args.sizes:
        rows = args.rows or SIZES[size][2]
        width, hidden, _ = SIZES[size]
        result["attention"] += kernels_fused.attention_rows(size, width, rows, device, args.repeat)
        if getattr(args, "fusions", False):
            result["fusions"] += kernels_fused.fusion_rows(size, width, hidden, rows, device, args.repeat)
        if R8.fp8_supported(device):
            result["fp8"] += fp8_rows(size, rows, device, args.repeat)
        result["quantizer"] += quantizer_rows(size, rows, device, args.repeat)
        result["residual"].append(residual_rows(size, rows, device, args.repeat))
    print(f"device: {name}; torch {torch.__version__}; median of {args.repeat} calls")
    if device.type != "cuda":
        print("(not CUDA: the quantizer's and the residual's kernel columns run their PyTorch fallbacks)")
    print()
    print("| size | layer | K x M | rows | forward bf16 (ms) | fp8 (ms) | bf16 / fp8 | error bf16 | error fp8 "
          "| forward + input gradient, bf16 (ms) | fp8 forward (ms) | fp8 both (ms) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in result["fp8"]:
        print(f"| {r['size']} | {r['layer']} | {r['k']} x {r['m']} | {r['rows']} | {r['bf16_ms']:.3f} | "
              f"{r['fp8_ms']:.3f} | {r['bf16_ms'] / r['fp8_ms']:.2f}x | {r['bf16_err']:.2e} | {r['fp8_err']:.2e} | "
              f"{r['bf16_step_ms']:.3f} | {r['fp8_step_ms']:.3f} | {r['fp8_all_step_ms']:.3f} |")
    print("\n| size | width | rows | quantizer, Triton (ms) | PyTorch ops (ms) |\n| --- | --- | --- | --- | --- |")
    for r in result["quantizer"]:
        print(f"| {r['size']} | {r['k']} | {r['rows']} | {r['kernel_ms']:.3f} | {r['reference_ms']:.3f} |")
    print("\n| size | [rows, C] | residual fwd+bwd, eager (ms) | fused (ms) | host per call, eager (us) | fused (us) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in result["residual"]:
        print(f"| {r['size']} | [{r['rows']}, {r['width']}] | {r['eager_ms']:.3f} | {r['fused_ms']:.3f} | "
              f"{r['eager_host_us']:.1f} | {r['fused_host_us']:.1f} |")
    kernels_fused.print_tables(result["attention"], result["fusions"])
    return result
