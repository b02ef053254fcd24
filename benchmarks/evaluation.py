"""Time the ``mAP`` evaluator on a random THUMOS-sized case, on one CPU thread.

Each case has 413 videos, 20 classes, 6,400 ground-truth actions and 200,000
predictions; a fraction of the predictions (``--near-fraction``, one row per
value) are jittered copies of ground truth (so matching has real work: many
candidates per action), the rest are random segments with random labels.
``evaluate()`` is timed (wall and CPU time, median of ``--repeats`` runs);
loading (the dicts into arrays, in the constructor) is timed once.

Usage::

    python tools/benchmark_eval.py [--repeats 5] [--seed 0] [--near-fraction 0.0 0.4 1.0]

Prints a markdown table for docs/benchmarks.md.
"""
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from opentad.evaluations import mAP  # noqa: E402


def make_case(rng: np.random.Generator, *, videos: int, classes: int, actions: int, predictions: int, near: float):
    """Random ground truth and predictions dicts in the evaluator's formats."""
    names = [f"video_test_{i:07d}" for i in range(videos)]
    durations = rng.uniform(60.0, 400.0, size=videos)
    gt_video = rng.integers(0, videos, size=actions)
    gt_len = rng.uniform(1.0, 20.0, size=actions)
    gt_start = rng.uniform(0.0, 1.0, size=actions) * (durations[gt_video] - gt_len)
    video_class = rng.integers(0, classes, size=(videos, 2))  # THUMOS videos hold one or two classes
    gt_label = video_class[gt_video, rng.integers(0, 2, size=actions)]
    database = {n: {"subset": "test", "duration": float(d), "annotations": []} for n, d in zip(names, durations)}
    for v, s, ln, c in zip(gt_video, gt_start, gt_len, gt_label):
        database[names[v]]["annotations"].append({"segment": [float(s), float(s + ln)], "label": f"class_{c}"})

    n_near = int(predictions * near)
    src = rng.integers(0, actions, size=n_near)
    jitter = rng.normal(0.0, 0.25, size=(n_near, 2)) * gt_len[src, None]
    near_seg = np.stack([gt_start[src], gt_start[src] + gt_len[src]], axis=1) + jitter
    near_label = np.where(rng.random(n_near) < 0.8, gt_label[src], rng.integers(0, classes, size=n_near))
    n_far = predictions - n_near
    far_video = rng.integers(0, videos, size=n_far)
    far_len = rng.uniform(0.5, 30.0, size=n_far)
    far_start = rng.uniform(0.0, 1.0, size=n_far) * durations[far_video]
    video = np.concatenate([gt_video[src], far_video])
    seg = np.concatenate([near_seg, np.stack([far_start, far_start + far_len], axis=1)])
    label = np.concatenate([near_label, rng.integers(0, classes, size=n_far)])
    score = rng.random(predictions)
    results = {n: [] for n in names}
    for v, (s, e), c, p in zip(video, seg, label, score):
        results[names[v]].append({"segment": [float(s), float(e)], "label": f"class_{c}", "score": float(p)})
    return {"database": database}, {"results": results}


def time_case(near: float, seed: int, repeats: int) -> str:
    """Build one case, time evaluate() and return its markdown table row."""
    rng = np.random.default_rng(seed)
    gt, pred = make_case(rng, videos=413, classes=20, actions=6400, predictions=200_000, near=near)
    thresholds = [0.3, 0.4, 0.5, 0.6, 0.7]
    t0 = time.perf_counter()
    evaluator = mAP(ground_truth_filename=gt, prediction_filename=pred, subset="test", tiou_thresholds=thresholds)
    load_s = time.perf_counter() - t0
    wall, cpu, metrics = [], [], {}
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        metrics = evaluator.evaluate()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return (
        f"| {near:.0%} | {len(evaluator.ground_truth.label):,} | {len(evaluator.prediction.label):,} "
        f"| {load_s:.2f} | **{statistics.median(wall):.3f}** | {min(wall):.3f} / {max(wall):.3f} "
        f"| {statistics.median(cpu):.3f} | {metrics['average_mAP'] * 100:.2f} |"
    )


def run(args: argparse.Namespace) -> None:
    """Time every ``--near-fraction`` case of the tool's ``args`` on one thread; prints the table."""
    torch.set_num_threads(1)
    print("| near-gt predictions | ground truth | predictions | load (s) | evaluate() wall median (s) "
          "| wall min / max (s) | evaluate() CPU median (s) | average mAP |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for near in args.near_fraction:
        print(time_case(near, args.seed, args.repeats))
    print(f"\n413 videos, 20 classes, tIoU [0.3, 0.4, 0.5, 0.6, 0.7], seed {args.seed}, {args.repeats} runs each; "
          f"numpy {np.__version__}, torch threads {torch.get_num_threads()}, python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

