"""The full detector training step, AdaTAD config against its QLoRA config, in one run, with MFU.

For each size, the shipped THUMOS config pair (:data:`SIZES`) or any pair
given with ``--configs ADATAD,QLORA`` is built with random weights
(``custom.pretrain=None``; nothing is read from disk) and trained on one random
batch: uint8 frames of the config's shape (``LoadFrames.trunc_len *
scale_factor`` frames, the train pipeline's last fixed ``Resize``; ``--frames``
and ``--img-size`` override), all-valid masks over the window and 3 random
ground-truth segments of valid labels per video. Frames and targets come from
``--seed`` alone, so every row of a size sees the same batch; weights are
seeded too, so the same config gives the same losses in every run.

One step is the trainer's own iteration, :func:`opentad.cores.train_engine.train_one_epoch`
over a one-batch loader: forward_train under the config's ``solver.amp``
autocast (GradScaler for fp16), backward, ``solver.clip_grad_norm``, the
optimizer of :func:`opentad.cores.optimizer.build_optimizer` (the config's
parameter groups) and the scheduler step; the EMA update only with ``--ema``.
Rows: ``AdaTAD``, ``QLoRA`` (the shipped config), then each ``--variants
NAME=key=value[,key=value]...`` applied as ``--cfg-options`` onto the QLoRA
config; ``--common key=value[,...]`` onto every row, AdaTAD's too. Per row: the median step time over ``--steps`` after ``--warmup``
(the device synchronised before each clock reading), the peak of
``torch.cuda.max_memory_allocated`` over the whole row, warm-up included (n/a
on the CPU), both as ratios to the AdaTAD row of the size, the peak of the
timed steps alone (without the memory planner's profile and a CUDA-graph
capture's eager run), the most memory the allocator held during the timed
steps (``max_memory_reserved`` after ``empty_cache``: unlike the allocated
peak it counts CUDA graphs' private pools, whose replays use memory no
tensor is allocated in), the first step's loss (6 significant digits) and
the MFU.

MFU convention: the model FLOPs of a step are the ViT's (:func:`vit_forward_flops`;
adapters, LoRA, the detector head and recomputation not counted) forward, plus
its backward from the first block with a trainable parameter on: 1x the
block's forward where its own weights are frozen (input gradients only), 2x
where they train (input and weight gradients); the patch embedding's backward
(1x) only when it trains. MFU = those FLOPs / (median step time x the bf16
matmul rate measured in the same run: median over 10 products of ``--peak-size``
square matrices). ``--forward-only`` adds per size a row of the plain frozen
ViT alone (no adapters), bf16 weights and inputs, under ``torch.no_grad``.
``--profile`` runs one more step of each row under the profiler and adds a
table of its device time per kind of kernel (:mod:`benchmarks.step_profile`).
``--profile-memory`` records every allocation of each row's steps (warm-up
included: a graph's capture happens there; recording slows the steps, so the
times of such a run are not the table's) and lists, per row, what was alive at
the peak of allocated bytes and what each memory pool held at the end
(:mod:`opentad.utils.memory`).

Examples::

    python tools/benchmark_step.py --sizes s,g --forward-only --json step.json
    python tools/benchmark_step.py --sizes g --variants budget24=model.backbone.custom.memory_budget_gib=24
    OMP_NUM_THREADS=1 python tools/benchmark_step.py --device cpu --steps 1 --warmup 0 --configs \\
        configs/adatad/synthetic/e2e_synthetic_vit_tiny_adapter.py,configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora.py
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import statistics
import time
import traceback
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import torch

from benchmarks.common import sync
from benchmarks.step_profile import kernel_breakdown, memory_recorded
from benchmarks.step_report import format_table, ratios, write_json
from benchmarks.step_inputs import SIZES, input_shape, load_row_config, random_batch, rows_to_measure, vit_keys
from opentad.cores.distributed import DistEnv
from opentad.cores.launch import RunContext, build_model, section
from opentad.cores.optimizer import build_optimizer
from opentad.cores.scheduler import build_scheduler
from opentad.cores.train_engine import resolve_amp_dtype, train_one_epoch
from opentad.registry import BACKBONES, ConfigError, build
from opentad.utils.config import Config
from opentad.utils.ema import ModelEma
from opentad.utils.misc import set_seed

__all__ = ["ViTFlops", "vit_forward_flops", "step_flops", "matmul_peak", "measure_step", "measure_forward", "run",
           "format_table", "write_json"]

logger = logging.getLogger(__name__)


class ViTFlops(NamedTuple):
    """Forward FLOPs of a ViT: the patch embedding, one block, and all (embedding + depth blocks)."""

    embed: int
    block: int
    total: int


def vit_forward_flops(*, clips: int, num_frames: int, img_size: int, patch_size: int, embed_dims: int, depth: int,
                      mlp_ratio: float, tubelet_size: int = 2, in_channels: int = 3) -> ViTFlops:
    """The forward FLOPs of a VideoMAE ViT on ``clips`` clips, counted from the shapes (2 FLOP per multiply-add).

    With ``n = (num_frames // tubelet_size) * (img_size // patch_size) ** 2`` tokens per clip, ``C`` channels
    and ``h = int(C * mlp_ratio)`` hidden units: the patch embedding (a Conv3d, kernel = stride) is
    ``2 n C (in_channels tubelet_size patch_size^2)``; a block is ``qkv 2 n C 3C + QK^T 2 n^2 C + AV 2 n^2 C +
    proj 2 n C C + fc1 2 n C h + fc2 2 n h C`` (attention within each clip). Norms, GELU, softmax, biases and
    adapters are not counted.

    Args:
        clips: clips in the batch (``batch * frames // num_frames``); num_frames: frames of a clip.
        img_size: frame height and width; the others: the ViT config's keys.

    Returns:
        :class:`ViTFlops` for the whole batch.
    """
    grid = img_size // patch_size
    n = (num_frames // tubelet_size) * grid * grid
    c, hidden = embed_dims, int(embed_dims * mlp_ratio)
    embed = clips * 2 * n * c * in_channels * tubelet_size * patch_size * patch_size
    block = clips * (2 * n * c * (3 * c + c + 2 * hidden) + 2 * 2 * n * n * c)
    return ViTFlops(embed=embed, block=block, total=embed + depth * block)


def step_flops(model: torch.nn.Module, cfg: Config, clips: int, img_size: int) -> int:
    """Model FLOPs of one training step under the convention of the module docstring."""
    flops = vit_forward_flops(clips=clips, img_size=img_size, **vit_keys(cfg))
    vit = model.backbone.model.backbone
    free = vit.graph_free_blocks() if hasattr(vit, "graph_free_blocks") else 0

    def own_weights_train(module: torch.nn.Module) -> bool:
        return any(p.requires_grad and p.dim() > 1 for n, p in module.named_parameters()
                   if "adapter" not in n and "lora" not in n)

    backward = sum((2 if own_weights_train(b) else 1) * flops.block for b in list(vit.blocks)[free:])
    return flops.total + backward + (flops.embed if own_weights_train(vit.patch_embed) else 0)


def _timed(fn, steps: int, warmup: int, device, warm: Optional[Callable[[], None]] = None) -> Tuple[float, Any, float]:
    """Median seconds of ``fn()`` over ``steps`` calls after ``warmup``, the first call's result, and the seconds
    of the warm-up calls together (compilation, the memory planner's profile, CUDA-graph capture happen there);
    ``warm()`` runs once between the warm-up and the timed calls."""
    times, first = [], None
    for i in range(warmup + steps):
        if i == warmup and warm is not None:
            warm()
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        first = result if i == 0 else first
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:]), first, sum(times[:warmup])


def matmul_peak(device: torch.device, size: int, reps: int = 10) -> float:
    """The bf16 matrix-product rate (FLOP/s): median time of ``reps`` products of ``size``-square matrices."""
    a, b = (torch.randn(size, size, device=device, dtype=torch.bfloat16) for _ in range(2))
    seconds, _, _ = _timed(lambda: a @ b, reps, 2, device)
    return 2 * size ** 3 / seconds


def _fresh(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> Optional[float]:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def measure_step(path: str, overrides: Dict[str, Any], args: argparse.Namespace, device) -> Dict[str, Any]:
    """Build one row's detector, optimizer and scheduler and time the trainer's iteration on a random batch."""
    cfg = load_row_config(path, overrides, args.frames)
    shape = input_shape(cfg, args)
    batch = random_batch(cfg, args.batch, shape, args.seed, device)
    _fresh(device)
    set_seed(args.seed, deterministic=args.deterministic)  # as tools/train.py (--disable_deterministic unless set)
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=device, distributed=False)
    model = build_model(RunContext(cfg=cfg, env=env, work_dir="", seed=args.seed, config_path=path))
    solver = section(cfg, "solver", {})
    amp = resolve_amp_dtype(solver.get("amp", False), device)
    optimizer = build_optimizer(section(cfg, "optimizer"), model)
    scheduler, _ = build_scheduler(section(cfg, "scheduler"), optimizer, 1)
    step = dict(model=model, optimizer=optimizer, scheduler=scheduler, device=device, amp_dtype=amp,
                scaler=torch.amp.GradScaler("cuda") if amp == torch.float16 else None,
                clip_grad_norm=float(solver.get("clip_grad_norm", -1.0)), show_progress=False,
                model_ema=ModelEma(model) if args.ema and solver.get("ema", False) else None)
    one_step = lambda: train_one_epoch([batch], epoch=0, **step)["cost"]  # noqa: E731
    warm_peak: List[Optional[float]] = []

    def warm() -> None:  # the warm-up's peak, then the timed steps' own (cached free memory given back first)
        events.count = 0  # from here on, a capture or a re-plan is a timed step's
        warm_peak.append(_peak(device))
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)

    events = _SetupEvents()
    watched = logging.getLogger("opentad.models.memory")
    level = watched.level
    watched.setLevel(min(watched.getEffectiveLevel(), logging.INFO))  # the events are INFO records
    watched.addHandler(events)
    try:
        with memory_recorded(device, getattr(args, "profile_memory", False)) as memory:
            seconds, loss, warmup_s = _timed(one_step, args.steps, args.warmup, device, warm)
    finally:
        watched.removeHandler(events)
        watched.setLevel(level)
    clips = args.batch * shape[1] // vit_keys(cfg)["num_frames"]
    timed_peak = _peak(device)
    timed_reserved = torch.cuda.max_memory_reserved(device) / 2**30 if device.type == "cuda" else None
    peaks = [p for p in warm_peak + [timed_peak] if p is not None]
    row = dict(batch=args.batch, frames=shape[1], img_size=shape[2], step_s=seconds, warmup_s=warmup_s,
               peak_gib=max(peaks) if peaks else None, timed_peak_gib=timed_peak,
               timed_reserved_gib=timed_reserved, loss=float(loss),
               flops=step_flops(model, cfg, clips, shape[2]), plan=_plan_summary(model),
               timed_setup_events=events.count)
    row.update(memory)
    if getattr(args, "profile", False):
        try:
            row["profile"] = kernel_breakdown(one_step, device)
        except Exception as err:  # noqa: BLE001 -- the profile is extra: the timed figures stay
            logger.exception("profiling %s failed", path)
            row["profile_error"] = f"{type(err).__name__}: {' '.join(str(err).split())[:120]}"
    return row


class _SetupEvents(logging.Handler):
    """Counts the memory machinery's setup events (a CUDA-graph capture, a memory plan chosen) logged while
    attached: one during the timed steps means some of them ran eagerly or planned (the row's time says so)."""

    PREFIXES = ("cuda_graphs: captured", "memory budget")

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith(self.PREFIXES):
            self.count += 1


def _plan_summary(model: torch.nn.Module) -> Optional[str]:
    """The memory planner's last choice (``"40 x checkpoint+hold"``...), or None without a budget."""
    for module in model.modules():
        planner = getattr(getattr(module, "memory", None), "planner", None)
        if planner is not None and planner.last is not None:
            return planner.last.summary()
    return None


def measure_forward(path: str, args: argparse.Namespace, device) -> Dict[str, Any]:
    """The plain frozen ViT of ``path`` (adapters left out), bf16 weights and frames, under ``torch.no_grad``."""
    cfg = load_row_config(path, {}, args.frames)
    _, frames, img = input_shape(cfg, args)
    vit_cfg = {k: v for k, v in cfg.model.backbone.backbone.items() if k not in ("adapter_index", "total_frames")}
    vit_cfg.update(type="VisionTransformerCP", with_cp=False)
    keys = vit_keys(cfg)
    clips = args.batch * frames // keys["num_frames"]
    _fresh(device)
    torch.manual_seed(args.seed)
    vit = build(vit_cfg, BACKBONES).to(device, torch.bfloat16).eval()
    x = torch.randn(clips, 3, keys["num_frames"], img, img, generator=torch.Generator().manual_seed(args.seed))
    x = x.to(device, torch.bfloat16)
    with torch.no_grad():
        seconds, _, _ = _timed(lambda: vit(x), args.steps, args.warmup, device)
    flops = vit_forward_flops(clips=clips, img_size=img, **keys).total
    return dict(batch=args.batch, frames=frames, img_size=img, step_s=seconds,
                peak_gib=_peak(device), loss=None, flops=flops)


@contextlib.contextmanager
def _kernel_flags_restored():
    """Give back the deterministic-algorithm and cuDNN flags that :func:`set_seed` changes for the rows."""
    flags = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[2:]


def _measure(size: str, label: str, name: str, job, peak_flops: float) -> Dict[str, Any]:
    """One row: ``job()``'s measurement (or ``error=...``: out of memory, or any other failure, logged with its
    traceback and kept in the row's ``traceback``: a log cut short loses nothing) with its size, config name
    and MFU."""
    try:
        row = job()
    except torch.cuda.OutOfMemoryError:
        row = dict(error="OOM")
    except ConfigError as err:  # a key that binds only when the model is built
        raise SystemExit(f"{label}: {' '.join(str(err).split())}") from None
    except Exception as err:  # noqa: BLE001 -- one failing row must not lose the others' figures
        logger.exception("%s failed", label)
        row = dict(error=f"{type(err).__name__}: {' '.join(str(err).split())[:120]}",
                   traceback=traceback.format_exc()[-6000:])
    row.update(size=size, config=name)
    if "flops" in row:
        row["mfu"] = row["flops"] / (row["step_s"] * peak_flops)
    return row


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Measure every row of ``args`` (the tool's options); returns ``dict(device, torch, cuda, peak_flops, rows)``.

    Raises:
        SystemExit: a bad option or config (see :func:`rows_to_measure`), named in one line.
    """
    device = torch.device(args.device)
    logging.getLogger("opentad").setLevel(logging.ERROR)  # the trainer's per-epoch lines, the random weights
    logging.getLogger("opentad.models.memory").setLevel(logging.INFO)  # but the memory planner's choice
    todo = rows_to_measure(args)
    peak_size = args.peak_size or (8192 if device.type == "cuda" else 512)
    result = dict(device=torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
                  torch=torch.__version__, cuda=torch.version.cuda, peak_size=peak_size,
                  peak_flops=matmul_peak(device, peak_size), rows=[])
    with _kernel_flags_restored():
        for index, (size, label, path, overrides) in enumerate(todo):
            row_args = argparse.Namespace(**{**vars(args), "batch": args.batch or SIZES.get(size, (0, 0, 2))[2]})
            jobs = [(label, lambda: measure_step(path, overrides, row_args, device))]
            if args.forward_only and label == "AdaTAD":
                jobs.append(("ViT forward", lambda: measure_forward(path, row_args, device)))
            for name, job in jobs:
                logger.info("row %d/%d: %s %s (%s%s)", index + 1, len(todo), size, name, path,
                            f", {overrides}" if overrides else "")
                result["rows"].append(dict(_measure(size, f"{name} ({path})", name, job, result["peak_flops"]),
                                           path=path, overrides=overrides))
                _fresh(device)
                if getattr(args, "json", None):  # rows so far, in case a later row never ends
                    write_json(result, args.json)
    ratios(result["rows"])
    return result
