"""Peak memory and step time of one training step of the end-to-end video backbone.

For each ViT size and fine-tuning mode, the backbone wrapper of the AdaTAD
configs is built with random weights and run on random frames
``[batch, 1, 3, frames, img, img]``: forward to ``[B, C, frames]``, a
squared-mean loss, backward and an AdamW step on the trainable parameters.
The table gives the trainable/total parameters, ``torch.cuda.max_memory_allocated``
and the median step time over ``--steps`` steps after ``--warmup`` steps, and
the loss of the first and last step: weights and frames are seeded
(``--seed``), so modes that differ only in where values wait (``*_bf16``
against ``*_offload``) must show the same losses, up to the nondeterminism of
the attention backward.

Examples::

    # the AdaTAD THUMOS setting on a GPU (batch 2, 768 frames, 160 px, fp16 autocast)
    python tools/benchmark_backbone.py --amp fp16
    python tools/benchmark_backbone.py --sizes s,b --modes adapter,fullft --amp fp16
    # CPU smoke test
    python tools/benchmark_backbone.py --sizes tiny --frames 32 --img-size 32 --steps 2 --warmup 1 --device cpu

A fine-tuning mode is an entry of ``MODES`` (``benchmarks/backbone_modes.py``):
a function ``(size, args) -> wrapper config`` (the ``model.backbone`` dict of
a config); add new modes there.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time
from typing import Any, Dict, List

import torch
from torch import Tensor

from benchmarks.backbone_modes import CLIP_LEN, MODE_AMP, MODE_POST_BUILD, MODES, SIZES
from opentad.registry import BACKBONES, build
from benchmarks.common import sync

__all__ = ["AMP", "measure", "run"]

#: ``--amp`` choices
AMP = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def _step(wrapper, frames, masks, amp, optimizer) -> Tensor:
    """One training step; returns the loss (detached, not synchronised)."""
    with torch.autocast(frames.device.type, dtype=amp, enabled=amp is not None):
        feats = wrapper(frames, masks)
    loss = feats.float().pow(2).mean()
    if loss.requires_grad:
        loss.backward()
    if optimizer is not None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def _profile_step(wrapper, frames, masks, amp, optimizer, device) -> List:
    """One step under ``torch.cuda.memory`` history recording: the top consumers at its peak."""
    from opentad.utils.memory import peak_consumers

    sync(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.memory._record_memory_history(max_entries=2_000_000, stacks="python")
    try:
        _step(wrapper, frames, masks, amp, optimizer)
        sync(device)
        snapshot = torch.cuda.memory._snapshot()
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    return peak_consumers(snapshot, base_bytes=base, device=device.index or 0)[1]


def measure(size: str, mode: str, args: argparse.Namespace, device: torch.device) -> Dict[str, Any]:
    """Build one backbone and time ``args.steps`` training steps; returns one table row."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(args.seed)  # same weights and frames in every mode: equal arithmetic gives equal losses
    with torch.device(device):
        wrapper = build(MODES[mode](size, args), BACKBONES)
    if mode in MODE_POST_BUILD:
        MODE_POST_BUILD[mode](wrapper)
    wrapper.train()
    params = [p for p in wrapper.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4) if params else None
    frames = torch.randint(0, 256, (args.batch, 1, 3, args.frames, args.img_size, args.img_size), dtype=torch.uint8)
    frames = frames.to(device)
    masks = torch.ones(args.batch, args.frames, dtype=torch.bool, device=device)
    amp = AMP[MODE_AMP.get(mode, args.amp)]
    times: List[float] = []
    losses: List[Tensor] = []
    for step in range(args.warmup + args.steps):
        sync(device)
        start = time.perf_counter()
        losses.append(_step(wrapper, frames, masks, amp, optimizer))
        sync(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    consumers = _profile_step(wrapper, frames, masks, amp, optimizer, device) if args.profile_memory else None
    return dict(
        size=size,
        mode=mode,
        frames=args.frames,
        amp=MODE_AMP.get(mode, args.amp),
        trainable=sum(p.numel() for p in params),
        total=sum(p.numel() for p in wrapper.parameters()),
        peak_gib=peak,
        step_s=statistics.median(times),
        losses=[float(v) for v in losses],
        consumers=consumers,
    )


def _row(r: Dict[str, Any], base: Dict[str, Any] = None) -> str:
    head = f"| {r['size']} | {r['frames']} | {r['mode']} |"
    if "error" in r:
        return f"{head} | | | {r['error']} | | | | |"
    peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "n/a (CPU)"
    millions = f"{r['trainable'] / 1e6:.3f} | {r['total'] / 1e6:.3f}"
    ratios = "| 1.00x | 1.00x" if base is r and r["peak_gib"] is not None else "| - | 1.00x"
    if base is not None and "error" not in base and base is not r:
        mem = f"{r['peak_gib'] / base['peak_gib']:.2f}x" if r["peak_gib"] is not None else "-"
        ratios = f"| {mem} | {r['step_s'] / base['step_s']:.2f}x"
    loss = f"{r['losses'][0]:.6g} → {r['losses'][-1]:.6g}"
    return f"{head} {r['amp']} | {millions} | {peak} | {r['step_s']:.3f} {ratios} | {loss} |"


def _print_consumers(r: Dict[str, Any]) -> None:
    print(f"\ntop memory consumers at the peak: {r['size']}, {r['frames']} frames, {r['mode']}")
    for label, size in r["consumers"]:
        print(f"  {size / 2**30:7.2f} GiB  {label}")
    print()


def _csv(value: str, allowed: Dict[str, Any], what: str) -> List[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit(f"unknown {what} {bad}; choose from {sorted(allowed)}")
    return items


def run(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Measure every size x frame count x mode of ``args`` (the tool's options); prints the table, returns the rows.

    Raises:
        SystemExit: unknown sizes or modes, or frame counts that are not multiples of 16 (names them).
    """
    frame_counts = [int(f) for f in args.frames.split(",") if f.strip()]
    if any(f % CLIP_LEN for f in frame_counts):
        raise SystemExit(f"--frames must be multiples of {CLIP_LEN}, got {frame_counts}")
    sizes, modes = _csv(args.sizes, SIZES, "sizes"), _csv(args.modes, MODES, "modes")
    logging.getLogger("opentad").setLevel(logging.ERROR)  # the random-weights warning, once per model
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; batch {args.batch}, {args.img_size} px, --amp {args.amp}, "
          f"adapters from block {args.adapter_start}, cudnn.benchmark {args.cudnn_benchmark}, median of {args.steps} "
          f"steps after {args.warmup}; "
          f"ratios against the first mode of each size and frame count")
    print("\n| size | frames | mode | autocast | trainable (M) | total (M) | peak memory (GiB) | step (s) "
          "| memory vs first | time vs first | loss, first → last step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for size in sizes:
        for frames in frame_counts:
            args.frames = frames
            base = None
            for mode in modes:
                try:
                    row = measure(size, mode, args, device)
                except torch.cuda.OutOfMemoryError:
                    row = dict(size=size, mode=mode, frames=frames, error="OOM")
                base = base or row
                rows.append(row)
                print(_row(row, base), flush=True)
    for row in rows:
        if row.get("consumers"):
            _print_consumers(row)
    return rows
