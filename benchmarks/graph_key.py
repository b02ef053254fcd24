"""Host time of the CUDA graphs' key (``custom.cuda_graphs``): what :class:`~opentad.models.memory.cuda_graphs.BlockGraphs`
computes on the host at every training step before it can replay.

The key holds the addresses of every tensor the blocks hold (:func:`~opentad.models.memory.cuda_graphs.tensors_read`:
parameters, 4-bit quantization states, fp8 copies, held weights), the trained parameters and every module's
``training`` flag. Its time follows the modules and the tensors they hold, not their sizes, so a QLoRA ViT of the
benchmarked depth (S: 12 blocks, g: 40) at a tiny width, adapters on every block, fp8 "all" products with their
copies made, stands in for the real one, on the CPU. Medians of ``--repeat`` calls.

Usage:
    python tools/benchmark_graph_key.py --depths 12,40
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List

import torch

from opentad.models.memory.cuda_graphs import tensors_read
from opentad.models.memory.fp8_matmul import quantize_fp8_weights
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy

__all__ = ["build", "median_ms", "measure", "format_table", "run"]

#: the tiny width (multiples of 16: the fp8 products apply) and clip of the stand-in ViT
TINY = dict(img_size=32, patch_size=16, embed_dims=64, num_heads=2, mlp_ratio=2.0, num_frames=4, total_frames=8,
            lora_r=4, lora_alpha=8, lora_dropout=0.1, quantize_backbone=True)


def build(depth: int) -> torch.nn.Module:
    """A frozen NF4 QLoRA ViT of ``depth`` blocks (adapters on each) with fp8 "all" products and their copies."""
    from opentad.models.backbones.vit_adapter_qlora import VisionTransformerQLoRA

    torch.manual_seed(0)
    model = VisionTransformerQLoRA(depth=depth, adapter_index=list(range(depth)), **TINY)
    model.on_weights_loaded()
    model.freeze()
    apply_memory_policy(model, MemoryPolicy(frozen_dtype=torch.bfloat16, frozen_fp8="all"))
    quantize_fp8_weights(model, torch.device("cpu"))
    return model.train()


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """The median wall time of ``repeat`` calls of ``fn``, in ms."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measure(depth: int, repeat: int) -> Dict[str, float]:
    """One row: the blocks' modules and the tensors they hold, and the key's parts' times (ms)."""
    blocks = list(build(depth).blocks)
    return dict(depth=depth, modules=sum(1 for b in blocks for _ in b.modules()), tensors=len(tensors_read(blocks)),
                tensors_read_ms=median_ms(lambda: tensors_read(blocks), repeat),
                params_ms=median_ms(lambda: [p for b in blocks for p in b.parameters() if p.requires_grad], repeat),
                modes_ms=median_ms(lambda: tuple(m.training for b in blocks for m in b.modules()), repeat))


def format_table(rows: List[Dict[str, float]]) -> str:
    lines = ["| blocks | modules | tensors held | tensors_read (ms) | trained parameters (ms) | training flags (ms) |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['depth']} | {r['modules']} | {r['tensors']} | {r['tensors_read_ms']:.2f} | {r['params_ms']:.2f} "
              f"| {r['modes_ms']:.2f} |" for r in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> List[Dict[str, float]]:
    """Measure every ``args.depths`` and print the table (``args.repeat`` calls each)."""
    rows = [measure(depth, args.repeat) for depth in args.depths]
    print(format_table(rows), flush=True)
    return rows
