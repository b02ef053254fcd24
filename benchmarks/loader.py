"""Measure the end-to-end training data loaders (frames/s) and the GPU's data-wait share.

Variants, all with the recipe's augmentation distributions (the pipelines
are derived from ``--config``, the cached AdaTAD recipe):

* ``raw``: upstream-equivalent. Each sample decodes its 768-frame window
  from the video in a loader worker, then Resize(-1, 182), RandomResizedCrop,
  Resize(160), Flip, ImgAug, ColorJitter on the CPU.
* ``cached-cpu``: the window read from the frame cache, the same
  augmentations on the CPU.
* ``cached-read``: the loader of ``cached-gpu`` alone (windows read from the
  cache and moved to the device, no augmentation): what the workers can feed.
* ``cached-gpu``: the window read from the frame cache; the augmentation
  (``BatchClipAugment``) runs on the batch on ``--device``, timed with the
  batch's transfer to the device.

"frames/s" counts sampled frames delivered (batch x 768), after ``--warmup``
batches; loaders draw from an endless shuffled sampler, so epochs do not
restart the workers. With ``--workers 0`` the loading runs in the measuring
process and "frames/CPU-s" gives its cost per CPU core. ``--train`` also runs short AdaTAD-S trainings
(ActionFormer, random weights, the recipe's optimizer, AMP and EMA, through
the project's ``train_one_epoch``) fed by the ``raw`` and ``cached-gpu``
loaders, and reports the share of each step spent waiting in ``next(loader)``.

Self-contained run on a GPU host (makes the synthetic THUMOS-size videos first)::

    python tools/benchmark_loader.py --make-videos /tmp/bench_data --num-videos 16 --seconds 155 \\
        --workers 14 --batches 200 --train

Prints Markdown tables. ``--data DIR`` reuses a generated dataset. The
videos, the pipelines and the frame caches are made in :mod:`benchmarks.loader_data`.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any, Callable, Dict, Iterator, List

import torch

from opentad.utils.config import load_config
from benchmarks.common import sync
from benchmarks.loader_data import build_caches, make_videos, pipelines, train_dataset_cfg

DEFAULT_CONFIG = "configs/adatad/thumos/e2e_thumos_videomae_s_768x1_160_adapter_cached.py"


# ---------------------------------------------------------------------------- loaders
def check_shared_memory(cfg, args) -> None:
    """Warn when /dev/shm cannot hold the batches the workers keep in flight (loader workers would crash)."""
    if args.workers == 0 or not os.path.isdir("/dev/shm"):
        return
    load = cfg["dataset"]["train"]["pipeline"][0]
    frames = load["trunc_len"] * load.get("scale_factor", 1) * cfg["solver"]["train"]["batch_size"]
    short = load.get("short_side", 182)
    need = args.workers * args.prefetch * frames * 3 * short * round(short * 16 / 9)
    st = os.statvfs("/dev/shm")
    free = st.f_bavail * st.f_frsize
    print(f"/dev/shm: {free / 2**30:.1f} GiB free, about {need / 2**30:.1f} GiB in flight at most")
    if free < need:
        print("WARNING: /dev/shm is too small for the batches in flight; lower --workers or --prefetch")


class EndlessSampler(torch.utils.data.Sampler):
    """Shuffled passes over the dataset, one after another, without end."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed)
        while True:
            yield from torch.randperm(self.size, generator=g).tolist()


def make_loader(dataset, args, batch_size: int):
    from opentad.datasets import collate

    pin = not args.no_pin_memory and args.device.startswith("cuda")
    extra = dict(prefetch_factor=args.prefetch, persistent_workers=False) if args.workers > 0 else {}
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=EndlessSampler(len(dataset), args.seed),
                                       collate_fn=collate, num_workers=args.workers, pin_memory=pin, **extra)


def measure(loader, batches: int, warmup: int, consume: Callable[[Dict[str, Any]], None], device) -> Dict[str, float]:
    """Time ``batches`` batches (each passed to ``consume``); rates leave out the first ``warmup``."""
    it = iter(loader)
    start = time.perf_counter()
    marks, cpu_marks, waits, frames = [], [], [], 0
    for _ in range(batches):
        t0 = time.perf_counter()
        batch = next(it)
        waits.append(time.perf_counter() - t0)
        consume(batch)
        sync(device)
        marks.append(time.perf_counter())
        cpu_marks.append(time.process_time())
        frames = batch["inputs"].shape[0] * batch["inputs"].shape[1] * batch["inputs"].shape[3]
    del it
    warm = min(max(warmup, 1), batches - 1)
    steady = (batches - warm) * frames
    return dict(batches=batches, frames_per_batch=frames, first_s=marks[0] - start,
                fps=steady / (marks[-1] - marks[warm - 1]), fps_all=batches * frames / (marks[-1] - start),
                fps_cpu=steady / max(cpu_marks[-1] - cpu_marks[warm - 1], 1e-9),
                wait_ms=1e3 * sum(waits[warm:]) / (batches - warm))


def run_loaders(cfg, root: str, fmt: str, args, first: bool) -> List[Dict[str, Any]]:
    from opentad.datasets import build_dataset
    from opentad.registry import build, TRANSFORMS

    device = torch.device(args.device)
    batch_size = cfg["solver"]["train"]["batch_size"]
    lines = pipelines(cfg, os.path.join(root, f"frame_cache_{fmt}"), args.decode_threads)
    augment = build(dict(type="BatchClipAugment", transforms=cfg["model"]["backbone"]["data_preprocessor"]["augment"],
                         seed=args.seed), TRANSFORMS)

    def to_device(batch):
        batch["inputs"].to(device, non_blocking=True)

    def augment_on_device(batch):
        augment(batch["inputs"].to(device, non_blocking=True))

    plan = [("cached-cpu", args.slow_batches, to_device), ("cached-read", args.batches, to_device),
            ("cached-gpu", args.batches, augment_on_device)]
    if first:
        plan.insert(0, ("raw", args.slow_batches, to_device))
    rows = []
    for name, batches, consume in plan:
        if batches <= 0:
            continue
        dataset = build_dataset(train_dataset_cfg(cfg, root, lines["cached-gpu" if name == "cached-read" else name]))
        result = measure(make_loader(dataset, args, batch_size), batches, args.warmup, consume, device)
        rows.append(dict(variant=name, format="-" if name == "raw" else fmt, **result))
        print(f"  {name} ({rows[-1]['format']}): {result['fps']:.0f} frames/s", flush=True)
    return rows


# ---------------------------------------------------------------------------- training
class TimedBatches:
    """``steps`` batches from an endless loader, timing each ``next()`` (for ``train_one_epoch``)."""

    def __init__(self, loader, steps: int):
        self.loader, self.steps = loader, steps
        self.waits: List[float] = []
        self.marks: List[float] = []

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        it = iter(self.loader)
        for _ in range(self.steps):
            t0 = time.perf_counter()
            batch = next(it)
            self.waits.append(time.perf_counter() - t0)
            self.marks.append(time.perf_counter())
            yield batch


def run_training(cfg, root: str, fmt: str, args, loader_name: str, steps: int) -> Dict[str, Any]:
    """A short training of the recipe's model (random weights) fed by one loader; returns the step timings."""
    from opentad.cores.launch import section
    from opentad.cores.optimizer import build_optimizer
    from opentad.cores.scheduler import build_scheduler
    from opentad.cores.train_engine import resolve_amp_dtype, train_one_epoch
    from opentad.datasets import build_dataset
    from opentad.registry import DETECTORS, build
    from opentad.utils.ema import ModelEma

    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = build(cfg["model"], DETECTORS).to(device)
    if loader_name == "raw":  # the CPU pipeline augments: the preprocessor only normalises
        model.backbone.model.data_preprocessor.augment = None
    dataset = build_dataset(train_dataset_cfg(cfg, root, pipelines(cfg, os.path.join(root, f"frame_cache_{fmt}"),
                                                                   args.decode_threads)[loader_name]))
    batches = TimedBatches(make_loader(dataset, args, cfg["solver"]["train"]["batch_size"]), steps)
    optimizer = build_optimizer(section(cfg, "optimizer"), model)
    scheduler, _ = build_scheduler(section(cfg, "scheduler"), optimizer, steps)
    amp_dtype = resolve_amp_dtype(cfg["solver"].get("amp", False), device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    ema = ModelEma(model) if cfg["solver"].get("ema", False) else None
    train_one_epoch(batches, model, optimizer, scheduler, epoch=0, device=device, model_ema=ema,
                    clip_grad_norm=float(cfg["solver"].get("clip_grad_norm", -1)), logging_interval=10**9,
                    amp_dtype=amp_dtype, scaler=scaler, show_progress=False)
    warm = min(max(args.warmup, 1), steps - 1)
    span = batches.marks[-1] - batches.marks[warm - 1]
    # the i-th wait happens between marks i-1 and i: the share of the measured span spent in next()
    wait = sum(batches.waits[warm:])
    return dict(loader=loader_name if loader_name == "raw" else f"{loader_name} ({fmt})", steps=steps,
                step_ms=1e3 * span / (steps - warm), wait_ms=1e3 * wait / (steps - warm), share=wait / span)


# ---------------------------------------------------------------------------- report
def table(rows: List[Dict[str, Any]], columns: List[tuple]) -> str:
    head = "| " + " | ".join(c[0] for c in columns) + " |"
    rule = "| " + " | ".join("---:" if c[2] else "---" for c in columns) + " |"
    body = ["| " + " | ".join(c[1](r) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule] + body)


def run(args: argparse.Namespace) -> Dict[str, List[Dict[str, Any]]]:
    """Run everything for the tool's ``args``; prints the tables and returns their rows (``caches``, ``loaders``,
    ``training``)."""
    cfg = load_config(args.config, dict(args.cfg_options, **{"model.backbone.custom.pretrain": None}))
    root = make_videos(args.make_videos, args.num_videos, args.seconds, args.size, args.workers) if args.make_videos \
        else args.data
    formats = [f for f in args.formats.split(",") if f]
    check_shared_memory(cfg, args)
    caches = build_caches(cfg, root, formats, max(1, args.workers))
    rows = []
    for i, fmt in enumerate(formats):
        rows += run_loaders(cfg, root, fmt, args, first=i == 0)
    raw_fps = next((r["fps"] for r in rows if r["variant"] == "raw"), None)
    gpu = "" if args.device == "cpu" else f", {torch.cuda.get_device_name(torch.device(args.device))}"
    print(f"\nMachine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}){gpu}; torch "
          f"{torch.__version__}; workers {args.workers}, prefetch {args.prefetch}, pin_memory "
          f"{not args.no_pin_memory and args.device.startswith('cuda')}, augmentation device {args.device}\n")
    print(table(caches, [("cache format", lambda r: r["format"], False), ("videos", lambda r: str(r["videos"]), True),
                         ("frames", lambda r: f"{r['frames']:,}", True),
                         ("build (s)", lambda r: f"{r['seconds']:.1f}", True),
                         ("disk (GiB)", lambda r: f"{r['gib']:.2f}", True),
                         ("KiB/frame", lambda r: f"{r['kib_per_frame']:.1f}", True)]) + "\n")
    print(table(rows, [("loader", lambda r: r["variant"], False), ("cache", lambda r: r["format"], False),
                       ("batches", lambda r: str(r["batches"]), True),
                       ("frames/s (steady)", lambda r: f"{r['fps']:,.0f}", True),
                       ("frames/s (with start)", lambda r: f"{r['fps_all']:,.0f}", True),
                       ("first batch (s)", lambda r: f"{r['first_s']:.1f}", True),
                       ("frames/CPU-s (workers=0)",
                        lambda r: f"{r['fps_cpu']:,.0f}" if args.workers == 0 else "-", True),
                       ("wait/batch (ms)", lambda r: f"{r['wait_ms']:.0f}", True),
                       ("vs raw", lambda r: f"{r['fps'] / raw_fps:.1f}x" if raw_fps else "-", True)]) + "\n")
    runs = []
    if args.train:
        trainings = [("cached-gpu", args.train_steps)] + ([("raw", args.train_raw_steps)] if args.train_raw_steps > 0 else [])
        for name, steps in trainings:
            runs.append(run_training(cfg, root, formats[0], args, name, steps))
            r = runs[-1]  # at once, so that a run cut short keeps what finished
            print(f"training fed by {r['loader']}: {r['steps']} steps, {r['step_ms']:.0f} ms/step, data wait "
                  f"{r['wait_ms']:.0f} ms/step ({100 * r['share']:.1f}%)", flush=True)
        print(table(runs, [("training fed by", lambda r: r["loader"], False),
                           ("steps", lambda r: str(r["steps"]), True),
                           ("step (ms)", lambda r: f"{r['step_ms']:.0f}", True),
                           ("data wait (ms/step)", lambda r: f"{r['wait_ms']:.0f}", True),
                           ("data-wait share", lambda r: f"{100 * r['share']:.1f}%", True)]))
    return dict(caches=caches, loaders=rows, training=runs)

