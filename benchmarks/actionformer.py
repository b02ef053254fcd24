"""Time and memory of ActionFormer (THUMOS-14 I3D size) on random features.

Builds the detector from ``configs/_base_/models/actionformer.py`` (2048 ->
512 channels, 6 levels, window 19, max_seq_len 2304), then measures on
``--batch`` random feature sequences of ``--length`` steps:

* a training step (forward + backward, AdamW-free) in seconds and peak memory;
* an inference pass (``forward_test``) in seconds.

Example::

    python tools/benchmark_actionformer.py --device cuda --amp --steps 20
    OMP_NUM_THREADS=2 python tools/benchmark_actionformer.py --device cpu --steps 2 --batch 1
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config
from benchmarks.common import ROOT, sync



def _batch(batch: int, length: int, device: torch.device):
    inputs = torch.randn(batch, 2048, length, device=device)
    masks = torch.ones(batch, length, dtype=torch.bool, device=device)
    masks[0, int(length * 0.7) :] = False  # one padded sample
    gts, labels = [], []
    for i in range(batch):
        starts = torch.rand(8, device=device) * (length * 0.6)
        gts.append(torch.stack([starts, starts + 5 + torch.rand(8, device=device) * 100], dim=1))
        labels.append(torch.randint(0, 20, (8,), device=device))
    metas = [dict(video_name=f"v{i}") for i in range(batch)]
    return dict(inputs=inputs, masks=masks, metas=metas, gt_segments=gts, gt_labels=labels)


def _time(fn, steps: int, device: torch.device) -> float:
    fn()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps


def run(args: argparse.Namespace) -> None:
    """Build the detector and time a training step and an inference pass for the tool's ``args``; prints them."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = load_config(os.path.join(ROOT, "configs", "_base_", "models", "actionformer.py"))
    model = build(cfg.model, DETECTORS).to(device)
    batch = _batch(args.batch, args.length, device)
    autocast = torch.autocast(device.type, dtype=torch.float16, enabled=args.amp)

    def train_step():
        model.zero_grad(set_to_none=True)
        with autocast:
            losses = model(**batch)
        losses["cost"].backward()

    def test_step():
        with torch.no_grad(), autocast:
            model.forward_test(batch["inputs"], batch["masks"])

    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_s = _time(train_step, args.steps, device)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    model.eval()
    test_s = _time(test_step, args.steps, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(
        f"device={name} batch={args.batch} length={args.length} amp={args.amp} "
        f"params={sum(p.numel() for p in model.parameters()) / 1e6:.1f}M\n"
        f"train step: {train_s * 1000:.1f} ms, peak memory {peak:.2f} GiB\n"
        f"inference: {test_s * 1000:.1f} ms"
    )

