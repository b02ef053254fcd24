"""Several-GPU DDP check and benchmark of (QLoRA-)AdaTAD (issue #8); on a CPU, a two-process Gloo smoke run.

GPU host, 2 GPUs (keep NCCL_NVLS_ENABLE=0 exported; PyAV is not needed)::

    python tools/benchmark_ddp.py --data-dir /tmp/ddp_data --out OUT/ddp --work-root /tmp/ddp_work --time-budget 500

CPU smoke run (2 Gloo processes, the tiny QLoRA config only, a few iterations)::

    python tools/benchmark_ddp.py --data-dir /tmp/ddp_smoke_data --out /tmp/ddp_smoke --smoke

Steps:

1. Data, reused when already there: synthetic THUMOS-format videos rendered
   straight into frame caches (:mod:`opentad.datasets.synthetic.frame_cache`,
   no video encoding or decoding): the default preset (96x96, 5 classes) for
   the tiny config; the ``thumos`` preset (320x180, 20 classes, videos of
   ``--s-seconds``) for the ViT-S configs, each training video listed
   ``--s-repeat`` times so that an epoch has enough iterations.
2. Configs, written to ``OUT/configs``: each recipe unchanged but for its
   training input (read from the cache; the ViT-S recipes with the cached
   recipe's GPU augmentation, ``..._adapter_cached.py``), random weights
   (``custom.pretrain=None``), no evaluation, a checkpoint every epoch,
   ``static_graph`` and ``fp16_compress`` on.
3. Runs, each ``bash tools/dist_train.sh CONFIG N`` (log in ``OUT/logs``):
   the tiny QLoRA, QLoRA-S and AdaTAD-S configs on ``--procs`` processes; the
   QLoRA-S run resumed from its second-to-last checkpoint on ``--procs``
   processes; the two ViT-S configs on one GPU each (at the same time on
   GPUs 0 and 1 unless ``--sequential``) for the throughput comparison.
   A resumed run whose checkpoint is missing (``--runs`` without its original
   run on a fresh machine) is not started; the summary says why.
4. ``OUT/summary.md`` and ``OUT/summary.json`` (:mod:`benchmarks.ddp.report`, from each run's
   ``metrics.jsonl``),
   rewritten after every run, so a run cut short (``--time-budget``,
   ``--run-timeout``, SIGTERM) still leaves a report.

Data and configs: :mod:`benchmarks.ddp.data`. See ``docs/ddp.md``.

Exit status: 0 when every run finished and every check passed, else 1.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from benchmarks.ddp.data import RECIPES, make_tiny_data, make_vit_s_data, write_tiny_config, write_vit_s_configs
from benchmarks.ddp.report import read_run, summary_markdown, verdicts
from opentad.cores.run_log import METRICS_FILE, read_records
from benchmarks.common import ROOT

__all__ = ["plan_runs", "resume_checkpoint", "command", "launch_records", "missing_input", "not_started",
           "run"]



# ------------------------------------------------------------------ runs
def plan_runs(args, configs: Dict[str, str]) -> List[Dict[str, Any]]:
    """The runs, in order; ``group`` > 0 marks runs that may run at the same time (the one-GPU ones)."""
    n, runs = args.procs, []
    main = ["tiny_qlora"] if args.smoke else ["tiny_qlora", "s_qlora", "s_adapter"]
    resumed = "tiny_qlora" if args.smoke else "s_qlora"
    single = ["tiny_qlora"] if args.smoke else ["s_adapter", "s_qlora"]
    epochs = {"tiny_qlora": args.tiny_epochs, "s_qlora": args.s_epochs, "s_adapter": args.s_epochs}
    for label in main:
        runs.append(dict(name=f"{label}_x{n}", label=label, procs=n, epochs=epochs[label]))
        if label == resumed:
            at = max(0, epochs[label] - 2)
            runs.append(dict(name=f"{label}_resume_x{n}", label=label, procs=n, epochs=epochs[label], id=1,
                             resume_of=f"{label}_x{n}", resume_epoch=at))
    for label in single:
        single_epochs = args.tiny_epochs if label == "tiny_qlora" else args.single_epochs
        runs.append(dict(name=f"{label}_x1", label=label, procs=1, epochs=single_epochs, group=1))
    wanted = set(args.runs.split(",")) if args.runs else None
    if wanted is not None and wanted - {r["name"] for r in runs}:
        raise ValueError(f"--runs: unknown run(s) {sorted(wanted - {r['name'] for r in runs})}; "
                         f"valid: {[r['name'] for r in runs]}")
    for run in runs:
        run["config"] = configs[run["label"]]
        run["work_dir"] = os.path.join(args.work_root or os.path.join(args.out, "work"), run["label"])
    return [r for r in runs if wanted is None or r["name"] in wanted]


def resume_checkpoint(run: Dict[str, Any]) -> str:
    """The checkpoint a resumed run starts from: its original run's (``id0``) ``epoch_{resume_epoch}.pth``."""
    return os.path.join(run["work_dir"], f"gpu{run['procs']}_id0", "checkpoint", f"epoch_{run['resume_epoch']}.pth")


def command(run: Dict[str, Any], args) -> List[str]:
    cmd = ["bash", os.path.join(ROOT, "tools", "dist_train.sh"), run["config"], str(run["procs"])]
    cmd += ["--id", str(run.get("id", 0))]
    if not args.deterministic:
        cmd.append("--disable_deterministic")
    if run.get("resume_of"):
        cmd += ["--resume", resume_checkpoint(run)]
    else:  # a rerun into the same work root: the earlier run's files go to old_<timestamp>/ (train.py refuses else)
        cmd.append("--move_old_run")
    return cmd + ["--cfg-options", f"work_dir={run['work_dir']}", f"workflow.end_epoch={run['epochs']}",
                  *args.cfg_options]


def visible_gpus() -> List[str]:
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    return listed.split(",") if listed else [str(i) for i in range(torch.cuda.device_count())]


def start(run: Dict[str, Any], args, gpu: Optional[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHON=shutil.which(os.environ.get("PYTHON", "")) or sys.executable)
    env.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast stays off on the lent hosts
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
    run["log"] = os.path.join(args.out, "logs", f"{run['name']}.log")
    run["command"] = " ".join(command(run, args))
    print(f"[benchmark_ddp] {run['name']}: {run['command']}", flush=True)
    run["began"] = time.time()
    with open(run["log"], "w") as log:
        return subprocess.Popen(command(run, args), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def launch_records(run: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The records this launch appended to its run folder's ``metrics.jsonl``: from its ``run`` record on."""
    path = os.path.join(run["work_dir"], f"gpu{run['procs']}_id{run.get('id', 0)}", METRICS_FILE)
    records = read_records(path)
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(run["began"])))
    starts = [i for i, r in enumerate(records) if r.get("event") == "run" and r.get("time", "") >= since]
    return records[starts[-1]:] if starts else []


def stop(proc: subprocess.Popen) -> int:
    """End a run: SIGTERM to its own process group (torchrun and its workers), SIGKILL 20 s later."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()
    except ProcessLookupError:
        return proc.wait()


def finish(run: Dict[str, Any], proc: subprocess.Popen, args, deadline: Optional[float]) -> Dict[str, Any]:
    ends = [t for t in (deadline, None if args.run_timeout is None else run["began"] + args.run_timeout) if t]
    try:
        rc = proc.wait(timeout=max(1.0, min(ends) - time.time()) if ends else None)
    except subprocess.TimeoutExpired:
        rc = stop(proc)
        run["stopped"] = True
        print(f"[benchmark_ddp] {run['name']}: stopped after {time.time() - run['began']:.0f} s (time limit)",
              flush=True)
    with open(run["log"], encoding="utf8", errors="replace") as f:
        text = f.read()
    meta = {k: run[k] for k in ("name", "label", "procs", "command", "resume_of", "resume_epoch", "stopped")
            if k in run}
    record = read_run(launch_records(run), text, config=os.path.basename(RECIPES[run["label"]]), rc=rc,
                      wall_s=time.time() - run["began"], **meta)
    print(f"[benchmark_ddp] {run['name']}: exit {rc}, {record['wall_s']:.0f} s, "
          f"{_or_dash(record['samples_per_s'])} samples/s, ranks agree: {record['ranks_agree']}", flush=True)
    if rc != 0 and record["error"]:
        print(f"[benchmark_ddp] {run['name']}: first traceback ends: {record['error'][-1]}", flush=True)
    return record


def not_started(run: Dict[str, Any], reason: str) -> Dict[str, Any]:
    """The record of a run that was not launched (the report says why)."""
    print(f"[benchmark_ddp] {run['name']}: not started: {reason}", flush=True)
    meta = {k: run[k] for k in ("name", "label", "procs", "resume_of", "resume_epoch") if k in run}
    return read_run([], "", config=os.path.basename(RECIPES[run["label"]]), rc=None, wall_s=0.0,
                    not_started=reason, **meta)


def missing_input(run: Dict[str, Any], records: List[Dict[str, Any]]) -> Optional[str]:
    """Why a resumed run cannot start (its checkpoint is missing; ``records``: the runs done so far), else None."""
    path = resume_checkpoint(run) if run.get("resume_of") else None
    if path is None or os.path.isfile(path):
        return None
    original = [r for r in records if r["name"] == run["resume_of"]]
    if original:
        return f"no checkpoint {path}: {run['resume_of']} ended with exit {original[-1].get('rc')} before writing it"
    return (f"no checkpoint {path}: run {run['resume_of']} first (--runs {run['resume_of']},{run['name']}; "
            f"it writes epoch_{run['resume_epoch']}.pth with the same --s-epochs/--tiny-epochs)")


def _or_dash(value) -> str:
    return "-" if value is None else f"{value:.2f}"


# --------------------------------------------------------------- summary
def host_lines(args, data_lines: List[str]) -> List[str]:
    import torch

    gpus = "none (CPU, Gloo)"
    if torch.cuda.is_available() and shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"]
        gpus = "; ".join(subprocess.run(query, capture_output=True, text=True).stdout.strip().splitlines())
    from importlib.metadata import PackageNotFoundError, version

    try:
        bnb = version("bitsandbytes")
    except PackageNotFoundError:  # reported; the QLoRA runs then fail and say why
        bnb = "not installed"
    return [
        f"Command: `python tools/benchmark_ddp.py {' '.join(sys.argv[1:])}`",
        "",
        f"Host: {platform.node()}, {os.cpu_count()} CPUs; GPUs: {gpus}; torch {torch.__version__} "
        f"(CUDA {torch.version.cuda}); bitsandbytes {bnb}; "
        f"NCCL_NVLS_ENABLE={os.environ.get('NCCL_NVLS_ENABLE', 'unset (0 in the runs)')}.",
        f"Kernels: {'deterministic' if args.deterministic else 'fastest (--disable_deterministic)'}. "
        "Samples/s: samples of all ranks per second of the training loop (data loading included), over the "
        "epochs after the first; peak memory: torch.cuda.max_memory_allocated / max_memory_reserved per rank.",
        *data_lines,
    ]


def write_summary(args, records: List[Dict[str, Any]], preamble: List[str]) -> None:
    title = "DDP smoke run (CPU)" if args.smoke else f"{args.procs}-GPU DDP check of QLoRA-AdaTAD (issue #8)"
    with open(os.path.join(args.out, "summary.md"), "w", encoding="utf8") as f:
        f.write(summary_markdown(records, title=title, preamble=preamble))
    with open(os.path.join(args.out, "summary.json"), "w", encoding="utf8") as f:
        json.dump(records, f, indent=1, default=str)


def run(args: argparse.Namespace) -> int:
    """Data, configs, runs and summary for the tool's ``args``; returns the exit status (see the docstring)."""
    os.makedirs(args.out, exist_ok=True)
    began = time.time()
    deadline = None if args.time_budget is None else began + args.time_budget
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally clause below: stop the runs
    tiny = make_tiny_data(args.data_dir, videos=args.tiny_videos, short=args.smoke, workers=args.workers)
    folder = os.path.join(args.out, "configs")
    configs = {"tiny_qlora": write_tiny_config(folder, tiny, repo=ROOT, epochs=args.tiny_epochs)}
    data_lines = [f"Data: tiny: {tiny.samples} videos (96x96), frame cache at full size."]
    if not args.smoke:
        seconds = tuple(float(v) for v in args.s_seconds.split(","))
        s = make_vit_s_data(args.data_dir, videos=args.s_videos, repeat=args.s_repeat, seconds=seconds,
                            workers=args.workers)
        paths, note = write_vit_s_configs(folder, s, repo=ROOT, epochs=args.s_epochs, workers=args.loader_workers,
                                          augment=args.s_augment)
        configs.update(paths)
        data_lines[0] += (f" ViT-S: {args.s_videos} videos of {args.s_seconds} s (320x180) listed {args.s_repeat} "
                          f"times = {s.samples} samples per epoch, cache at short side 182, augmentation on the "
                          f"{args.s_augment.upper()}; {note}.")
    data_lines[0] += f" ({time.time() - began:.0f} s to make or check.)"
    preamble = host_lines(args, data_lines)
    runs, records, gpus = plan_runs(args, configs), [], visible_gpus()
    index, active, skipped = 0, [], []
    try:
        while index < len(runs):
            group = [runs[index]]
            while (group[0].get("group") and not args.sequential and index + len(group) < len(runs)
                   and runs[index + len(group)].get("group") == group[0]["group"] and len(group) < max(1, len(gpus))):
                group.append(runs[index + len(group)])
            index += len(group)
            if deadline is not None and time.time() > deadline - 20:
                skipped += [r["name"] for r in group]
                continue
            blocked = {r["name"]: missing_input(r, records) for r in group}
            records += [not_started(r, blocked[r["name"]]) for r in group if blocked[r["name"]]]
            group = [r for r in group if not blocked[r["name"]]]
            active = [(run, start(run, args, gpus[i] if run["procs"] == 1 and gpus else None))
                      for i, run in enumerate(group)]
            for run, proc in active:
                records.append(finish(run, proc, args, deadline))
            active = []
            write_summary(args, records, preamble)
    finally:
        for _, proc in active:
            if proc.poll() is None:
                stop(proc)
        if skipped:
            preamble.append(f"Not run (time budget of {args.time_budget:.0f} s spent): {', '.join(skipped)}.")
        write_summary(args, records, preamble)
    print(f"[benchmark_ddp] summary: {os.path.join(args.out, 'summary.md')} ({time.time() - began:.0f} s)")
    return 0 if records and not skipped and all(ok for _, ok, _ in verdicts(records)) else 1
