"""Time an evaluator (``mAP``, ``Recall`` or ``mAP_EPIC``) on a random dataset-sized case, on one CPU thread.

Presets (``--preset``):

* ``thumos``: 413 videos, 20 classes (one or two a video), 6,400 ground-truth
  actions of 1-20 s in 60-400 s videos, 200,000 predictions.
* ``anet``: ActivityNet-1.3 validation size, 4,926 videos, 200 classes (one a
  video), 7,650 actions (every video has one) covering 5-80 % of 30-240 s
  videos, 100 predictions a video on average (492,600).

A fraction of the predictions (``--near-fraction``, one row per value) are
jittered copies of ground truth (so matching has real work: many candidates
per action), the rest are random segments with random labels. ``Recall``
ignores the labels; ``mAP_EPIC`` reads ``verb_label`` / ``noun_label`` written
from the class (``verb = c % 97``, ``noun = 7 c % 300``) and evaluates
``--task``. ``evaluate()`` is timed (wall and CPU time, median of
``--repeats`` runs); loading (the dicts into arrays, in the constructor) is
timed once (wall and CPU). Thresholds and keys are those of upstream's configs for the
preset (mAP: 0.3:0.7 THUMOS, 0.5:0.95 ActivityNet; Recall: 0.5:0.95, AR@1, 5,
10, 100; mAP_EPIC: 0.1:0.5).

Usage::

    python tools/benchmark_eval.py [--evaluator mAP|Recall|mAP_EPIC] [--preset thumos|anet]
        [--repeats 5] [--seed 0] [--near-fraction 0.0 0.4 1.0] [--task verb|noun|action]

Prints a markdown table for docs/benchmarks.md.
"""
import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from opentad.evaluations import Recall, mAP, mAP_EPIC

PRESETS = {
    "thumos": dict(videos=413, classes=20, actions=6400, predictions=200_000, subset="test", duration=(60.0, 400.0),
                   length=("seconds", 1.0, 20.0), classes_per_video=2),
    "anet": dict(videos=4926, classes=200, actions=7650, predictions=492_600, subset="validation",
                 duration=(30.0, 240.0), length=("fraction", 0.05, 0.8), classes_per_video=1),
}
STEP_05_095 = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
EVALUATORS = {"mAP": mAP, "Recall": Recall, "mAP_EPIC": mAP_EPIC}
EPIC_VERBS, EPIC_NOUNS = 97, 300


def _ground_truth(rng: np.random.Generator, p: dict):
    """Per action: video, start, length, class; and the video durations."""
    videos, actions = p["videos"], p["actions"]
    durations = rng.uniform(*p["duration"], size=videos)
    if p["length"][0] == "fraction":  # every video has an action, as in ActivityNet
        gt_video = np.concatenate([np.arange(videos), rng.integers(0, videos, size=actions - videos)])
    else:
        gt_video = rng.integers(0, videos, size=actions)
    gt_len = rng.uniform(p["length"][1], p["length"][2], size=actions)
    if p["length"][0] == "fraction":
        gt_len = gt_len * durations[gt_video]
    gt_start = rng.uniform(0.0, 1.0, size=actions) * (durations[gt_video] - gt_len)
    video_class = rng.integers(0, p["classes"], size=(videos, p["classes_per_video"]))
    gt_label = video_class[gt_video, rng.integers(0, p["classes_per_video"], size=actions)]
    return durations, gt_video, gt_start, gt_len, gt_label


def _epic_fields(c: int) -> dict:
    verb, noun = c % EPIC_VERBS, (7 * c) % EPIC_NOUNS
    return {"verb": verb, "noun": noun, "action": f"{verb},{noun}"}


def make_case(rng: np.random.Generator, preset: str, near: float, epic: bool = False):
    """Random ground truth and predictions dicts in the evaluators' formats."""
    p = PRESETS[preset]
    names = [f"video_{i:07d}" for i in range(p["videos"])]
    durations, gt_video, gt_start, gt_len, gt_label = _ground_truth(rng, p)
    database = {n: {"subset": p["subset"], "duration": float(d), "annotations": []} for n, d in zip(names, durations)}
    for v, s, ln, c in zip(gt_video, gt_start, gt_len, gt_label):
        ann = {"segment": [float(s), float(s + ln)], "label": f"class_{c}"}
        if epic:
            fields = _epic_fields(int(c))
            ann.update(verb_label=f"id_{fields['verb']:03d}", noun_label=f"id_{fields['noun']:03d}")
        database[names[v]]["annotations"].append(ann)

    predictions, classes = p["predictions"], p["classes"]
    n_near = int(predictions * near)
    src = rng.integers(0, len(gt_video), size=n_near)
    jitter = rng.normal(0.0, 0.25, size=(n_near, 2)) * gt_len[src, None]
    near_seg = np.stack([gt_start[src], gt_start[src] + gt_len[src]], axis=1) + jitter
    near_label = np.where(rng.random(n_near) < 0.8, gt_label[src], rng.integers(0, classes, size=n_near))
    n_far = predictions - n_near
    far_video = rng.integers(0, p["videos"], size=n_far)
    far_len = rng.uniform(0.5, 30.0, size=n_far)
    far_start = rng.uniform(0.0, 1.0, size=n_far) * durations[far_video]
    video = np.concatenate([gt_video[src], far_video])
    seg = np.concatenate([near_seg, np.stack([far_start, far_start + far_len], axis=1)])
    label = np.concatenate([near_label, rng.integers(0, classes, size=n_far)])
    score = rng.random(predictions)
    results = {n: [] for n in names}
    for v, (s, e), c, q in zip(video, seg, label, score):
        item = {"segment": [float(s), float(e)], "label": f"class_{c}", "score": float(q)}
        if epic:
            item.update(_epic_fields(int(c)))
        results[names[v]].append(item)
    return {"database": database}, {"results": results}


def evaluator_keys(name: str, preset: str, task: str) -> dict:
    """The evaluation keys of upstream's configs for this evaluator and dataset."""
    if name == "Recall":
        return dict(tiou_thresholds=STEP_05_095, topk=[1, 5, 10, 100], max_avg_nr_proposals=100)
    if name == "mAP_EPIC":
        return dict(tiou_thresholds=[0.1, 0.2, 0.3, 0.4, 0.5], task=task)
    return dict(tiou_thresholds=[0.3, 0.4, 0.5, 0.6, 0.7] if preset == "thumos" else STEP_05_095)


def headline(name: str, metrics: dict) -> float:
    """The number a researcher reads first: average mAP, or AR@100 (AUC for ``Recall`` without 100)."""
    if name == "Recall":
        return metrics.get("AR@100", metrics["AUC"])
    return metrics["average_mAP"]


def time_case(args: argparse.Namespace, near: float) -> str:
    """Build one case, time evaluate() and return its markdown table row."""
    rng = np.random.default_rng(args.seed)
    gt, pred = make_case(rng, args.preset, near, epic=args.evaluator == "mAP_EPIC")
    keys = evaluator_keys(args.evaluator, args.preset, args.task)
    t0, c0 = time.perf_counter(), time.process_time()
    evaluator = EVALUATORS[args.evaluator](ground_truth_filename=gt, prediction_filename=pred,
                                           subset=PRESETS[args.preset]["subset"], **keys)
    load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    wall, cpu, metrics = [], [], {}
    for _ in range(args.repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        metrics = evaluator.evaluate()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return (
        f"| {near:.0%} | {load_s:.2f} / {load_cpu:.2f} | **{statistics.median(wall):.3f}** | {min(wall):.3f} / {max(wall):.3f} "
        f"| {statistics.median(cpu):.3f} | {headline(args.evaluator, metrics) * 100:.2f} |"
    )


def run(args: argparse.Namespace) -> None:
    """Time every ``--near-fraction`` case of the tool's ``args`` on one thread; prints the table."""
    torch.set_num_threads(1)
    p = PRESETS[args.preset]
    what = "AR@100" if args.evaluator == "Recall" else "average mAP"
    task = f" (task {args.task})" if args.evaluator == "mAP_EPIC" else ""
    print(f"`{args.evaluator}`{task}, preset {args.preset}: {p['videos']:,} videos, {p['classes']} classes, "
          f"{p['actions']:,} ground-truth actions, {p['predictions']:,} predictions, "
          f"tIoU {evaluator_keys(args.evaluator, args.preset, args.task)['tiou_thresholds']}\n")
    print(f"| near-gt predictions | load wall / CPU (s) | evaluate() wall median (s) | wall min / max (s) "
          f"| evaluate() CPU median (s) | {what} |")
    print("| --- | --- | --- | --- | --- | --- |")
    for near in args.near_fraction:
        print(time_case(args, near))
    print(f"\nseed {args.seed}, {args.repeats} runs each; numpy {np.__version__}, torch threads "
          f"{torch.get_num_threads()}, python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
