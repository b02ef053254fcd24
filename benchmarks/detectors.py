"""Training-iteration time and peak memory of each detector at THUMOS-14 I3D size.

Every detector is built from its THUMOS-14 config (upstream's file name, see
:data:`DETECTORS`) and trained for ``--steps`` iterations (after one warm-up
iteration) on the same random batch: ``--batch`` feature sequences of 2048
channels and ``--length`` snippets (one of them padded), 8 random ground-truth
actions of 20 classes each (:func:`benchmarks.actionformer._batch`). One
iteration is zero_grad, forward, backward and an AdamW step over the trainable
parameters. Reported per detector:

* the median iteration time;
* peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over the timed
  iterations (weights, gradients, AdamW state, activations); on the CPU the
  growth of the process' resident set from before the model is built to its
  high-water mark (``ru_maxrss``), so it also counts allocator slack;
* both as ratios to ActionFormer, which is always measured in the same run.

The detectors of :data:`WINDOWED` (BMN, GTAD, TSI, ETAD, VSGN, AFSD) train on
sliding windows instead of whole videos: each gets a batch shaped as its config
trains (``solver.train.batch_size`` windows of ``dataset.train.window_size``
snippets, 1-4 random actions inside each window; :func:`window_batch`) and is
compared with BMN, measured in the same run, in a second table.

Each detector runs in a fresh process (spawned), so one detector's allocator
caches and high-water mark never count for the next. Configs whose detector
has no ``in_channels=2048`` recipe upstream (DyFADet on VideoMAEv2-g,
VideoMambaSuite on InternVideo2-6B features) get ``projection.in_channels``
set to 2048 so that all detectors see the same input; the table says so.
A config that is not in the tree yet, or whose types are not registered yet,
is skipped with a line.

Example::

    python tools/benchmark_detectors.py --device cuda --steps 10
    OMP_NUM_THREADS=1 python tools/benchmark_detectors.py --device cpu --steps 2 --detectors actionformer
"""
from __future__ import annotations

import argparse
import concurrent.futures
import copy
import multiprocessing
import os
import platform
import resource
import statistics
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from benchmarks.actionformer import _batch
from benchmarks.common import ROOT, sync

#: detector name -> its THUMOS-14 config (upstream's path), the reference first.
DETECTORS: Dict[str, str] = {
    "actionformer": "configs/actionformer/thumos_i3d.py",
    "tridet": "configs/tridet/thumos_i3d.py",
    "temporalmaxer": "configs/temporalmaxer/thumos_i3d.py",
    "causaltad": "configs/causaltad/thumos_i3d.py",
    "dyfadet": "configs/dyfadet/thumos_videomaev2_g.py",
    "videomambasuite": "configs/videomambasuite/thumos_internvideo6b.py",
}
#: detectors trained on sliding windows: their config's window (``dataset.train.window_size``) and batch size
WINDOWED: Dict[str, str] = {
    "bmn": "configs/bmn/thumos_i3d.py",
    "gtad": "configs/gtad/thumos_i3d.py",
    "tsi": "configs/tsi/thumos_i3d.py",
    "etad": "configs/etad/thumos_i3d.py",
    "vsgn": "configs/vsgn/thumos_i3d.py",
    "afsd": "configs/afsd/thumos_i3d.py",
}
DETECTORS.update(WINDOWED)
REFERENCE = "actionformer"
WINDOWED_REFERENCE = "bmn"
FEATURE_CHANNELS = 2048  # what benchmarks.actionformer._batch draws


def select(names: Optional[str]) -> List[str]:
    """The detectors of ``--detectors`` (comma-separated, or None for all), each group's reference first.

    The whole-sequence group's reference is ActionFormer; the sliding-window group's (:data:`WINDOWED`) is BMN.

    Raises:
        ValueError: an unknown name.
    """
    chosen = list(DETECTORS) if not names else [n.strip().lower() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown detector(s) {unknown}; choose from {list(DETECTORS)}")
    whole = [n for n in chosen if n not in WINDOWED]
    windowed = [n for n in chosen if n in WINDOWED]
    out = [REFERENCE] + whole if whole or not windowed else []
    if windowed:
        out += [WINDOWED_REFERENCE] + windowed
    return list(dict.fromkeys(out))


def window_batch(cfg: Any, device: torch.device) -> Dict[str, Any]:
    """A random training batch shaped like a windowed config's: ``solver.train.batch_size`` windows of
    ``dataset.train.window_size`` snippets, 2048 channels, 1-4 random actions of 20 classes inside each window."""
    batch, length = int(cfg.solver.train.batch_size), int(cfg.dataset.train.window_size)
    inputs = torch.randn(batch, FEATURE_CHANNELS, length, device=device)
    masks = torch.ones(batch, length, dtype=torch.bool, device=device)
    gts, labels = [], []
    for _ in range(batch):
        count = int(torch.randint(1, 5, ()))
        starts = torch.rand(count, device=device) * (length * 0.7)
        ends = torch.minimum(starts + 2 + torch.rand(count, device=device) * length * 0.3,
                             torch.full_like(starts, length - 1.0))
        gts.append(torch.stack([starts, ends], dim=1))
        labels.append(torch.randint(0, 20, (count,), device=device))
    metas = [dict(video_name=f"v{i}") for i in range(batch)]
    return dict(inputs=inputs, masks=masks, metas=metas, gt_segments=gts, gt_labels=labels)


def _rss_bytes() -> int:
    """The current resident set of this process (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _model_config(config: str, model_options: Optional[Dict[str, Any]] = None) -> Tuple[Dict[str, Any], Any]:
    """The ``model`` section of ``config`` with ``model_options`` (``{"projection.arch": ...}``) applied and
    the first layer's ``in_channels`` set to the benchmark's features; and the whole config."""
    from opentad.utils.config import load_config

    overrides = {f"model.{key}": value for key, value in (model_options or {}).items()}
    cfg = load_config(os.path.join(ROOT, config), overrides)
    model = copy.deepcopy(cfg.model.to_dict())
    first = model.get("projection") or model.get("neck")  # AFSD has no projection: its neck takes the features
    if first is not None and "in_channels" in first:
        model["_in_channels_was"] = first.get("in_channels")
        first["in_channels"] = FEATURE_CHANNELS
    return model, cfg


def measure(name: str, config: str, args: argparse.Namespace) -> Dict[str, Any]:
    """Build ``name`` from ``config`` and time ``args.steps`` training iterations; one row of the table.

    Runs in the calling process; :func:`run` calls it in a fresh one.
    """
    from opentad.registry import DETECTORS as REGISTRY, build

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rss_before = _rss_bytes()
    model_cfg, cfg = _model_config(config, args.model_options)
    in_channels_was = model_cfg.pop("_in_channels_was", FEATURE_CHANNELS)
    torch.manual_seed(0)
    model = build(model_cfg, REGISTRY).to(device).train()
    batch = window_batch(cfg, device) if name in WINDOWED else _batch(args.batch, args.length, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)

    def iteration() -> None:
        optimizer.zero_grad(set_to_none=True)
        losses = model(**batch)
        losses["cost"].backward()
        optimizer.step()

    iteration()  # warm-up: lazy buffers, AdamW state, cuDNN/oneDNN choices
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
    else:  # ru_maxrss is in KiB on Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    return dict(
        detector=name,
        config=config,
        in_channels_was=in_channels_was,
        input=f"{batch['inputs'].shape[0]} x {batch['inputs'].shape[-1]}",
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        trainable_m=sum(p.numel() for p in params) / 1e6,
        step_s=statistics.median(times),
        peak_gib=peak / 2**30,
    )


def _measure_in_child(name: str, config: str, args: argparse.Namespace) -> Dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure, name, config, args).result()


def _row(r: Dict[str, Any], ref: Optional[Dict[str, Any]]) -> str:
    note = "" if r["in_channels_was"] == FEATURE_CHANNELS else f" (in_channels {r['in_channels_was']} -> 2048)"
    time_ratio = f"{r['step_s'] / ref['step_s']:.2f}x" if ref else "-"
    mem_ratio = f"{r['peak_gib'] / ref['peak_gib']:.2f}x" if ref and ref["peak_gib"] > 0 else "-"
    return (f"| {r['detector']} | `{r['config']}`{note} | {r['input']} | {r['params_m']:.1f} | "
            f"{r['step_s'] * 1000:.0f} | {r['peak_gib']:.2f} | {time_ratio} | {mem_ratio} |")


def _table(rows: List[Dict[str, Any]], reference: str) -> None:
    """Print one group's table, ratios against ``reference`` (measured in the same run)."""
    if not rows:
        return
    ref = next((r for r in rows if r["detector"] == reference), None)
    print(f"\n| detector | config | batch x snippets | parameters (M) | iteration (ms, median) | peak memory (GiB) "
          f"| time vs {reference} | memory vs {reference} |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(_row(r, ref), flush=True)


def run(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Measure every detector of ``args.detectors`` (the tool's options); prints the table, returns the rows.

    Raises:
        ValueError: an unknown detector name, or ``--device cuda`` without CUDA.
        RuntimeError: ActionFormer (the reference) could not be measured.
    """
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but CUDA is not available")
    names = select(args.detectors)
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or platform.machine()
    memory = "max_memory_allocated" if args.device == "cuda" else "resident-set growth to its high-water mark"
    print(f"device: {device}; torch {torch.__version__}; {args.threads} CPU thread(s); {FEATURE_CHANNELS} channels; "
          f"whole sequences: batch {args.batch} x {args.length} snippets; windowed detectors: their config's batch "
          f"and window; median of {args.steps} iteration(s) after one "
          f"warm-up (zero_grad, forward, backward, AdamW step); peak memory: {memory}"
          + (f"; model options {args.model_options}" if args.model_options else ""))
    rows: List[Dict[str, Any]] = []
    for name in names:
        config = DETECTORS[name]
        if not os.path.exists(os.path.join(ROOT, config)):
            print(f"skipped {name}: {config} is not in the tree yet")
            continue
        try:
            rows.append(_measure_in_child(name, config, args))
        except Exception as err:  # noqa: BLE001 - a detector still being written must not stop the others
            if name in (REFERENCE, WINDOWED_REFERENCE):
                raise RuntimeError(f"the reference {name} could not be measured: {err}") from err
            print(f"skipped {name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    _table([r for r in rows if r["detector"] not in WINDOWED], REFERENCE)
    _table([r for r in rows if r["detector"] in WINDOWED], WINDOWED_REFERENCE)
    return rows


def add_arguments(parser: argparse.ArgumentParser, detectors: Sequence[str] = tuple(DETECTORS)) -> None:
    """The tool's options (``tools/benchmark_detectors.py``)."""
    from opentad.utils.config import DictAction

    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--detectors", default=None,
                        help=f"comma-separated subset of {','.join(detectors)} (default: all); "
                             f"{REFERENCE} is always measured, as the reference")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--length", type=int, default=2304, help="snippets per sample")
    parser.add_argument("--steps", type=int, default=10, help="timed iterations (median), after one warm-up")
    parser.add_argument("--model-options", nargs="+", action=DictAction, default=None, metavar="KEY=VALUE",
                        help="overrides of every detector's model section, e.g. projection.max_seq_len=64 "
                             "(for smoke tests; the published figures use none)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch CPU threads in each measuring process (default: this process')")
