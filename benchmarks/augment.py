"""Time and memory of the batched GPU augmentation (``BatchClipAugment``) against its chunk size.

The augmentation is the cached AdaTAD recipe's (``--config``: RandomResizedCrop,
Resize 160x160, Flip, ImgAug "default", ColorJitter), applied to random uint8
clips of THUMOS size (``[B, 1, 3, 768, 182, 323]`` by default) on
``--device``. Every chunk size gets the same clips and the same drawn
parameters, in turn, round after round (``--rounds``), so a slow period of
the host hits them all; the table gives the median time of a batch over all
rounds and the peak memory above the input (``torch.cuda.max_memory_allocated``
on a GPU, :class:`~opentad.utils.live_bytes.LiveTensorBytes` on the CPU), and
checks that every chunk size gives the pixels of the first.

On the GPU host::

    python tools/benchmark_augment.py --chunks 64,128,256,768 --batch 2

Set the chunk of a run with ``model.backbone.data_preprocessor.augment_chunk_frames``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Dict, List

import torch

from opentad.transforms.batch_augment import BatchClipAugment
from opentad.utils.config import load_config
from opentad.utils.live_bytes import LiveTensorBytes
from benchmarks.common import ROOT, sync

DEFAULT_CONFIG = os.path.join(ROOT, "configs", "adatad", "thumos", "e2e_thumos_videomae_s_768x1_160_adapter_cached.py")


def _measure(aug: BatchClipAugment, clips: torch.Tensor, params) -> Dict[str, object]:
    """One batch: seconds, peak bytes above what existed before, and the output."""
    device = clips.device
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        began = time.perf_counter()
        out = aug.apply(clips, params)
        sync(device)
        seconds = time.perf_counter() - began
        peak = torch.cuda.max_memory_allocated(device) - before
    else:
        with LiveTensorBytes() as meter:
            began = time.perf_counter()
            out = aug.apply(clips, params)
            seconds = time.perf_counter() - began
        peak = meter.peak
    return dict(seconds=seconds, peak=peak, out=out)


def run(args: argparse.Namespace) -> List[Dict[str, object]]:
    """Time every chunk size of ``args`` (the tool's options); prints the table, returns its rows."""
    device = torch.device(args.device)
    chunks = args.chunks
    h, w = (int(v) for v in args.size.lower().split("x"))
    recipe = load_config(args.config).model.backbone.data_preprocessor.augment
    torch.manual_seed(args.seed)  # ColorJitter draws its order of operations when built (as mmaction2)
    aug = BatchClipAugment(transforms=recipe, chunk_frames=chunks[0])
    gen = torch.Generator().manual_seed(args.seed)
    clips = torch.randint(0, 256, (args.batch, 1, 3, args.frames, h, w), dtype=torch.uint8, generator=gen)
    clips = clips.to(device)
    torch.manual_seed(args.seed)
    params = aug.sample_params(args.batch, h, w)
    times: Dict[int, List[float]] = {c: [] for c in chunks}
    peaks: Dict[int, int] = {c: 0 for c in chunks}
    same: Dict[int, bool] = {}
    reference = None
    for round_index in range(args.warmup + args.rounds):
        for c in chunks:
            aug.chunk_frames = c
            r = _measure(aug, clips, params)
            if round_index >= args.warmup:
                times[c].append(r["seconds"])
            peaks[c] = max(peaks[c], r["peak"])
            reference = r["out"] if reference is None else reference
            same[c] = same.get(c, True) and torch.equal(r["out"], reference)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; clips uint8 {list(clips.shape)}; recipe of {args.config}; "
          f"median of {args.rounds} rounds after {args.warmup}")
    print("\n| chunk_frames | ms per batch (median) | min | peak above input (MiB) | same pixels as first |")
    print("| ---: | ---: | ---: | ---: | --- |")
    rows = []
    for c in chunks:
        row = dict(chunk=c, ms=1e3 * statistics.median(times[c]), min_ms=1e3 * min(times[c]),
                   peak_mib=peaks[c] / 2**20, same=same[c])
        rows.append(row)
        print(f"| {c} | {row['ms']:.1f} | {row['min_ms']:.1f} | {row['peak_mib']:.0f} | {'yes' if same[c] else 'NO'} |")
    return rows

