"""Speed of the native ops: compiled vs pure-PyTorch fallback, as a Markdown table.

Usage:
    python tools/benchmark_ops.py                 # CPU
    python tools/benchmark_ops.py --device cuda   # RoI ops on the GPU (NMS always runs on the CPU)
    python tools/benchmark_ops.py --quick         # smaller inputs, fewer repeats

Each row times one call (forward, or forward + backward) at sizes close to
real use: NMS of one video's candidates (THUMOS-like multiclass soft-NMS with
voting, ActivityNet-like class-agnostic soft-NMS), 1D RoI align of a batch of
proposals (G-TAD / TadTR style), and AFSD's boundary max pooling. The median
of ``--repeat`` runs after a warm-up is reported. A compiled op that is not
built shows "not built" (see ``python -m opentad.ops``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

from opentad.models.roi_heads.roi_extractors import align1d, boundary_max_pooling
from opentad.models.utils.post_processing import batched_nms
from opentad.ops import select_device_op, select_op


def timed(fn: Callable[[], None], repeat: int, device: torch.device) -> float:
    """Median wall time of ``fn`` in milliseconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def nms_cases(quick: bool) -> Dict[str, Callable[[str], Callable[[], None]]]:
    num = 500 if quick else 2000
    gen = torch.Generator().manual_seed(0)
    start = torch.rand(num, generator=gen) * 1000
    segs = torch.stack([start, start + torch.rand(num, generator=gen) * 100 + 1], dim=1)
    scores, labels = torch.rand(num, generator=gen), torch.randint(0, 20, (num,), generator=gen)
    thumos = dict(use_soft_nms=True, sigma=0.5, min_score=0.001, max_seg_num=2000, multiclass=True, voting_thresh=0.7)
    anet = dict(use_soft_nms=True, sigma=0.75, min_score=0.001, max_seg_num=100, multiclass=False, voting_thresh=0.9)
    hard = dict(use_soft_nms=False, iou_threshold=0.5, min_score=0.001, max_seg_num=200, multiclass=True)
    return {
        f"batched_nms, {num} segs, 20 classes, soft multiclass (THUMOS cfg)": lambda b: (
            lambda: batched_nms(segs, scores, labels, backend=b, **thumos)
        ),
        f"batched_nms, {num} segs, soft class-agnostic + voting (ANet cfg)": lambda b: (
            lambda: batched_nms(segs, scores, labels, backend=b, **anet)
        ),
        f"batched_nms, {num} segs, hard multiclass": lambda b: (
            lambda: batched_nms(segs, scores, labels, backend=b, **hard)
        ),
    }


def roi_cases(device: torch.device, quick: bool) -> Dict[str, Callable[[str], Callable[[], None]]]:
    gen = torch.Generator().manual_seed(1)
    batch, channels, length, num = (2, 64, 128, 200) if quick else (4, 256, 256, 2000)
    feat = torch.randn(batch, channels, length, generator=gen, dtype=torch.float64).to(device)
    start = torch.rand(num, generator=gen, dtype=torch.float64) * length
    rois = torch.stack(
        [
            torch.randint(0, batch, (num,), generator=gen).double(),
            start,
            start + torch.rand(num, generator=gen, dtype=torch.float64) * length / 2,
        ],
        dim=1,
    ).to(device)
    afsd_b, afsd_c, afsd_t = (1, 128, 96) if quick else (2, 1024, 96)
    pool_feat = torch.randn(afsd_b, afsd_c, afsd_t, generator=gen).to(device)
    seg = (torch.rand(afsd_b, afsd_t, 4, generator=gen) * afsd_t).to(device)

    def align_fb(b):
        def run():
            x = feat.detach().requires_grad_(True)
            align1d(x, rois, 16, 0, backend=b).sum().backward()

        return run

    def pool_fb(b):
        def run():
            x = pool_feat.detach().requires_grad_(True)
            boundary_max_pooling(x, seg, backend=b).sum().backward()

        return run

    return {
        f"align1d fwd, [{batch},{channels},{length}] x {num} rois, 16 bins, fp64": lambda b: (
            lambda: align1d(feat, rois, 16, 0, backend=b)
        ),
        "align1d fwd+bwd, same": align_fb,
        f"boundary_max_pooling fwd, [{afsd_b},{afsd_c},{afsd_t}] x {afsd_t} segs": lambda b: (
            lambda: boundary_max_pooling(pool_feat, seg, backend=b)
        ),
        "boundary_max_pooling fwd+bwd, same": pool_fb,
    }


def run_rows(cases, device: torch.device, compiled_available: bool, repeat: int) -> List[List[str]]:
    rows = []
    for name, make in cases.items():
        fallback = timed(make("torch"), repeat, device)
        compiled: Optional[float] = timed(make("compiled"), repeat, device) if compiled_available else None
        rows.append(
            [
                name,
                device.type,
                f"{fallback:.2f}",
                "not built" if compiled is None else f"{compiled:.2f}",
                "" if compiled is None else f"{fallback / compiled:.1f}x",
            ]
        )
    return rows


def run(args: argparse.Namespace) -> int:
    """Time every case for the tool's ``args`` (``argv``: its command line, for the header); prints the table."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    probe = torch.zeros(1, device=device)
    rows = run_rows(
        nms_cases(args.quick), torch.device("cpu"), select_op("nms_1d_cpu", "auto") is not None, args.repeat
    )
    roi_compiled = select_device_op("align1d", probe, "auto") and select_device_op("boundary_pooling", probe, "auto")
    rows += run_rows(roi_cases(device, args.quick), device, roi_compiled, args.repeat)
    machine = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    print(
        f"Command: `{' '.join(['python', 'tools/benchmark_ops.py'] + list(args.argv))}`  "
    )
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"Machine: {machine}; torch {torch.__version__}; median of {args.repeat} runs; OMP_NUM_THREADS={threads}\n")
    print("| op and input | device | fallback (ms) | compiled (ms) | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0

