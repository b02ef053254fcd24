"""BMN's boundary-matching layer (``BMNExtractor``): the sparse sampling against upstream's dense product.

For each ``--tscales`` entry ``T`` (``dscale = T`` unless ``--dscale``), an
extractor of THUMOS size (``--in-channels`` 256 -> ``hid_channels`` 128 ->
``--roi-channels`` 512 -> 128, ``num_sample`` 32, ``num_sample_perbin`` 3) runs
forward and backward (sum of the output) on ``--batch`` random sequences
``[B, 256, T]``, two ways with the same weights:

* ``dense``: upstream's formulation, ``torch.tensordot`` of the features with
  the dense ``[T, N, D, T]`` sampling mask, then ``conv3d`` on the
  ``[B, 128, N, D * T]`` result;
* ``sparse``: this project's ``BMNExtractor.forward`` (``conv3d`` weight first,
  then one sparse product with the ``[D * T, N * T]`` mask).

Reported: the median over ``--steps`` timed iterations (after one warm-up),
peak memory (CUDA: ``max_memory_allocated``; CPU: growth of the resident set
to its high-water mark, allocator slack included) and the sparse/dense ratios
measured in the same run. Each measurement runs in a fresh (spawned) process.
A method whose estimated activation memory exceeds ``--max-gib`` is skipped
with a line (upstream's dense intermediate alone is ``4 B N D T * 128`` bytes).

Example::

    python tools/benchmark_proposal_map.py --device cuda --batch 16
    OMP_NUM_THREADS=2 python tools/benchmark_proposal_map.py --device cpu --batch 2 --steps 3
"""
from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import platform
import resource
import statistics
import time
from typing import Any, Dict, List, Optional

import torch

from benchmarks.common import sync
from benchmarks.detectors import _rss_bytes

METHODS = ("dense", "sparse")
HIDDEN = 128
OUT = 128


def _cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return names[0] if names else platform.machine()
    except OSError:
        return platform.machine()


def dense_forward(extractor, mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Upstream's forward: ``tensordot`` with the dense mask ``[T, N, D, T]``, then ``conv3d``, ``conv2d``."""
    x = extractor.reduce_dim(x)
    sampled = torch.tensordot(x, mask, dims=([2], [0]))  # [B, H, N, D, T]
    dscale, tscale = sampled.shape[-2:]
    sampled = extractor.conv3d(sampled.flatten(3, 4))  # [B, R, 1, D * T]
    return extractor.conv2d(sampled.squeeze(2).unflatten(2, (dscale, tscale)))


def estimate_gib(method: str, batch: int, tscale: int, dscale: int, num_sample: int, roi: int) -> float:
    """Activation memory that dominates ``method`` (float32, forward and its gradient), in GiB."""
    maps = batch * dscale * tscale * (roi + OUT) * 4 * 3
    if method == "dense":
        maps += batch * HIDDEN * num_sample * dscale * tscale * 4 * 2 + tscale * num_sample * dscale * tscale * 4
    else:
        maps += batch * roi * num_sample * tscale * 4 * 2
    return maps / 2**30


def measure(method: str, tscale: int, args: argparse.Namespace) -> Dict[str, Any]:
    """Time ``args.steps`` forward+backward iterations of ``method`` at ``tscale``; one row."""
    from opentad.models.roi_heads.roi_extractors.bmn_extractor import BMNExtractor

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dscale = args.dscale or tscale
    rss_before = _rss_bytes()
    torch.manual_seed(0)
    extractor = BMNExtractor(
        in_channels=args.in_channels, hid_channels=HIDDEN, roi_channels=args.roi_channels, out_channels=OUT,
        tscale=tscale, dscale=dscale, num_sample=32, num_sample_perbin=3,
    ).to(device)
    x = torch.randn(args.batch, args.in_channels, tscale, device=device, requires_grad=True)
    if method == "dense":
        matrix = extractor.sampling_matrix().to_dense()  # [D * T, N * T]
        mask = matrix.view(dscale, tscale, 32, tscale).permute(3, 2, 0, 1).contiguous()
        del matrix

        def forward():
            return dense_forward(extractor, mask, x)
    else:
        def forward():
            return extractor(x)

    def iteration() -> None:
        extractor.zero_grad(set_to_none=True)
        x.grad = None
        forward().sum().backward()

    iteration()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        iteration()
        sync(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    return dict(method=method, tscale=tscale, dscale=dscale, step_s=statistics.median(times), peak_gib=peak / 2**30)


def _in_child(method: str, tscale: int, args: argparse.Namespace) -> Dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure, method, tscale, args).result()


def _ratio(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]], key: str) -> str:
    return f"{a[key] / b[key]:.3f}x" if a and b and b[key] > 0 else "-"


def run(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Measure both methods at every ``--tscales`` entry; prints the table, returns the rows.

    Raises:
        ValueError: ``--device cuda`` without CUDA.
    """
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but CUDA is not available")
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else _cpu_name()
    memory = "max_memory_allocated" if args.device == "cuda" else "resident-set growth to its high-water mark"
    print(f"device: {device}; torch {torch.__version__}; {args.threads} CPU thread(s); batch {args.batch}; "
          f"{args.in_channels} -> {HIDDEN} -> roi {args.roi_channels} -> {OUT} channels; num_sample 32, "
          f"num_sample_perbin 3; median of {args.steps} forward+backward iteration(s) after one warm-up; "
          f"peak memory: {memory}")
    rows: List[Dict[str, Any]] = []
    for tscale in args.tscales:
        dscale = args.dscale or tscale
        pair: Dict[str, Optional[Dict[str, Any]]] = {}
        for method in METHODS:
            need = estimate_gib(method, args.batch, tscale, dscale, 32, args.roi_channels)
            if need > args.max_gib:
                print(f"skipped {method} at tscale {tscale}: needs about {need:.1f} GiB > --max-gib {args.max_gib}")
                pair[method] = None
                continue
            pair[method] = _in_child(method, tscale, args)
        dense, sparse = pair["dense"], pair["sparse"]
        rows.append(dict(tscale=tscale, dscale=dscale, dense=dense, sparse=sparse))
    print("\n| tscale x dscale | dense (ms) | sparse (ms) | time sparse/dense | dense peak (GiB) "
          "| sparse peak (GiB) | memory sparse/dense |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        d, s = r["dense"], r["sparse"]
        cell = lambda m, k, f: f.format(m[k] * (1000 if k == "step_s" else 1)) if m else "skipped"  # noqa: E731
        print(f"| {r['tscale']} x {r['dscale']} | {cell(d, 'step_s', '{:.0f}')} | {cell(s, 'step_s', '{:.0f}')} | "
              f"{_ratio(s, d, 'step_s')} | {cell(d, 'peak_gib', '{:.2f}')} | {cell(s, 'peak_gib', '{:.2f}')} | "
              f"{_ratio(s, d, 'peak_gib')} |", flush=True)
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The tool's options (``tools/benchmark_proposal_map.py``)."""
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tscales", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--dscale", type=int, default=None, help="proposal durations (default: = tscale)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--in-channels", type=int, default=256)
    parser.add_argument("--roi-channels", type=int, default=512)
    parser.add_argument("--steps", type=int, default=5, help="timed iterations (median), after one warm-up")
    parser.add_argument("--max-gib", type=float, default=60.0,
                        help="skip a method whose estimated activation memory exceeds this")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch CPU threads in each measuring process (default: this process')")
