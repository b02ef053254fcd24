"""Tabulate the THUMOS mAP of finished runs (``<work_dir>/gpu{N}_id{ID}/``), one row per run.

Per run (files read by :mod:`.run_files`): the last ``eval`` record of
``metrics.jsonl``, else the last evaluation in an upstream text log; the
number of GPUs from the folder name (else the ``run`` record's world size);
the ``params`` record; batch sizes, backbone and setting from the saved config.

The *recipe* of a run is the config file of the same name under the configs
folder (before any ``--cfg-options``): its ``solver.train.batch_size`` is the
recipe's global batch, and :data:`RECIPE_GPUS` gives the number of GPUs its
published results were trained with, where known.
"""
from __future__ import annotations

import dataclasses
import glob
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from mmengine.config import Config

from .run_files import (
    METRICS_FILE,
    RUN_DIR,
    eval_metrics,
    find_run_dirs,
    last_record,
    load_run_config,
    parse_log_metrics,
    read_logs,
    read_metrics,
    trained_here,
)

logger = logging.getLogger(__name__)

__all__ = [
    "RECIPE_GPUS",
    "Recipe",
    "RunSummary",
    "describe_model",
    "find_recipe",
    "batch_warnings",
    "read_run",
    "summarize_runs",
    "format_markdown",
]


#: ``(config path under the configs folder, or a folder prefix, GPUs)``: how published results were trained.
RECIPE_GPUS: Tuple[Tuple[str, int], ...] = (
    ("adatad/thumos/", 2),  # upstream OpenTAD configs/adatad/README.md, THUMOS-14 table: every row 2 GPUs
    ("actionformer/synthetic_features.py", 2),  # the config's header: dist_train.sh ... 2
    ("adatad/synthetic/", 1),  # the configs' header: dist_train.sh ... 1
)

# (embed_dims, depth) of the ViT sizes the configs use
_VIT_SIZES = {(384, 12): "S", (768, 12): "B", (1024, 24): "L", (1280, 32): "H", (1408, 40): "g"}


@dataclasses.dataclass
class Recipe:
    """The published setting a run should match: its config file, global batch and GPUs (None: unknown)."""

    path: str
    global_batch: Optional[int]
    gpus: Optional[int]


@dataclasses.dataclass
class RunSummary:
    """One run, as a row of the results table.

    Attributes:
        work_dir: the run folder.
        config_name: the saved config's file name.
        gpus, global_batch, per_gpu_batch: the training set-up (None: unknown). In a
            test-only folder (``test_only``), ``gpus`` counts the test processes and
            the batches are None: the folder does not say how the checkpoint was trained.
        test_only: only ``tools/test.py`` ran in the folder (no training log or checkpoint).
        backbone, setting: see :func:`describe_model`.
        trainable_params, total_params: from the ``params`` record (None: none).
        backbone_trainable, backbone_params: the backbone's share (None: no backbone, or no record).
        metrics: ``{tIoU: mAP}`` as fractions; ``average_mAP`` their mean as evaluated.
        source: the file the metrics came from ("" when none was found).
        evaluated: ``epoch E`` (training's evaluation), ``test`` (``tools/test.py``) or ``log`` (read from a log).
        recipe: the recipe found for the run, or None.
        warnings: problems to show under the table.
    """

    work_dir: str
    config_name: str = ""
    gpus: Optional[int] = None
    global_batch: Optional[int] = None
    per_gpu_batch: Optional[float] = None
    test_only: bool = False
    backbone: str = "?"
    setting: str = "?"
    trainable_params: Optional[int] = None
    total_params: Optional[int] = None
    backbone_trainable: Optional[int] = None
    backbone_params: Optional[int] = None
    metrics: Dict[float, float] = dataclasses.field(default_factory=dict)
    average_mAP: Optional[float] = None
    source: str = ""
    evaluated: str = "?"
    recipe: Optional[Recipe] = None
    warnings: List[str] = dataclasses.field(default_factory=list)


def describe_model(cfg: Mapping[str, Any]) -> Tuple[str, str]:
    """``(backbone, setting)`` of a config's ``model``.

    Backbone: ``ViT-S`` / ``-B`` / ``-L`` / ``-H`` / ``-g`` by width and depth
    (else ``ViT {C}x{depth}``), or ``features ({C} ch)`` without a backbone.
    Setting: ``features``, ``qlora`` (``qlora-8bit``), ``side``, ``adapter``
    (``adapter+vit`` when the ViT trains too), ``frozen`` or ``fullft``.
    """
    model = cfg["model"]
    wrapper = model.get("backbone")
    if not wrapper:
        projection = model.get("projection") or {}
        return f"features ({projection.get('in_channels', '?')} ch)", "features"
    vit = wrapper.get("backbone") or {}
    size = (vit.get("embed_dims"), vit.get("depth"))
    backbone = f"ViT-{_VIT_SIZES[size]}" if size in _VIT_SIZES else f"ViT {size[0]}x{size[1]}"
    kind, custom = str(vit.get("type", "?")), wrapper.get("custom") or {}
    if kind == "VisionTransformerQLoRA":
        setting = "qlora" if int(vit.get("quantize_bits", 4)) == 4 else f"qlora-{vit['quantize_bits']}bit"
    elif kind == "VisionTransformerLadder":
        setting = "side"
    elif kind == "VisionTransformerAdapter":
        setting = "adapter" if vit.get("freeze_vit", True) else "adapter+vit"
    else:
        setting = "frozen" if custom.get("freeze_backbone") else "fullft"
    return backbone, setting


def find_recipe(config_name: str, configs_root: str, recipe_gpus: Optional[int] = None) -> Optional[Recipe]:
    """The config file named ``config_name`` under ``configs_root`` (first in sorted order), or None."""
    if not config_name or not os.path.isdir(configs_root):
        return None
    matches = sorted(glob.glob(os.path.join(configs_root, "**", config_name), recursive=True))
    if not matches:
        return None
    path = matches[0]
    cfg = Config.fromfile(path)
    batch = cfg.solver.train.batch_size if "solver" in cfg and "train" in cfg.solver else None
    relative = os.path.relpath(path, configs_root).replace(os.sep, "/")
    gpus = recipe_gpus
    if gpus is None:
        gpus = next((n for prefix, n in RECIPE_GPUS if relative == prefix or relative.startswith(prefix)), None)
    return Recipe(path=path, global_batch=None if batch is None else int(batch), gpus=gpus)


def batch_warnings(run: RunSummary) -> List[str]:
    """Warnings when the run's batch set-up differs from its recipe's (upstream OpenTAD issue #41)."""
    recipe, out = run.recipe, []
    if recipe is None or run.global_batch is None:
        return out
    per_gpu = "?" if run.per_gpu_batch is None else f"{run.per_gpu_batch:g}"
    if recipe.global_batch is not None and run.global_batch != recipe.global_batch:
        out.append(
            f"global batch {run.global_batch} ({run.gpus} GPU x {per_gpu}) differs from the recipe's "
            f"{recipe.global_batch} ({recipe.path}); learning rates and schedule were tuned for "
            f"{recipe.global_batch}, so this row is not comparable with published results"
        )
    if recipe.gpus is not None and run.gpus is not None and run.gpus != recipe.gpus and recipe.global_batch:
        out.append(
            f"trained on {run.gpus} GPU(s) x {per_gpu} per GPU, the recipe's results on {recipe.gpus} "
            f"GPU(s) x {recipe.global_batch / recipe.gpus:g} (global {recipe.global_batch}); upstream OpenTAD's "
            "1-GPU AdaTAD runs land far below its README (issue #41): reproduce with the recipe's GPU count"
        )
    return out


def read_run(run_dir: str, *, configs_root: str = "configs", recipe_gpus: Optional[int] = None) -> RunSummary:
    """Everything the table shows about one run folder (see the module docstring)."""
    run = RunSummary(work_dir=run_dir)
    log_text, records = read_logs(run_dir), read_metrics(run_dir)
    match, started = RUN_DIR.match(os.path.basename(os.path.normpath(run_dir))), last_record(records, "run")
    run.gpus = int(match.group(1)) if match else (started or {}).get("world_size")
    params = last_record(records, "params")
    if params is not None:
        run.trainable_params, run.total_params = params["trainable"], params["total"]
        run.backbone_trainable, run.backbone_params = params["parts"].get("backbone", (None, None))
    evaluation = last_record(records, "eval")
    if evaluation is not None:
        (run.average_mAP, run.metrics, run.evaluated), run.source = eval_metrics(evaluation), METRICS_FILE
    else:
        found = parse_log_metrics(log_text)
        if found is None:
            run.warnings.append(f"no evaluation found (no eval record in {METRICS_FILE}, no mAP lines in the logs)")
        else:
            (run.average_mAP, run.metrics), run.source, run.evaluated = found, "log", "log"
    cfg, run.config_name = load_run_config(run_dir, log_text)
    if cfg is None:
        run.warnings.append("no loadable config (saved .py file or Config dump in the log)")
        return run
    run.backbone, run.setting = describe_model(cfg)
    run.test_only = not trained_here(run_dir)
    if run.test_only:
        run.warnings.append(
            f"test-only folder: tools/test.py ran with {run.gpus if run.gpus is not None else '?'} process(es); "
            "how the tested checkpoint was trained is not recorded here"
        )
        return run
    if "solver" in cfg and "train" in cfg.solver:
        run.global_batch = int(cfg.solver.train.batch_size)
        run.per_gpu_batch = run.global_batch / run.gpus if run.gpus else None
    run.recipe = find_recipe(run.config_name, configs_root, recipe_gpus)
    run.warnings.extend(batch_warnings(run))
    return run


def summarize_runs(
    paths: Sequence[str], *, configs_root: str = "configs", recipe_gpus: Optional[int] = None
) -> List[RunSummary]:
    """:func:`read_run` on every run folder found under ``paths`` (:func:`find_run_dirs`)."""
    return [read_run(d, configs_root=configs_root, recipe_gpus=recipe_gpus) for d in find_run_dirs(paths)]


def _fmt_params(n: Optional[int], total: Optional[int]) -> str:
    """``26.43M (12.50%)`` / ``31.9K (100.00%)``: trainable parameters and their share of all."""
    if n is None:
        return "?"
    share = f" ({100.0 * n / total:.2f}%)" if total else ""
    return (f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K") + share


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "?" if value is None else f"{value:.{digits}f}"


def format_markdown(runs: Sequence[RunSummary], *, names: Optional[Sequence[str]] = None) -> str:
    """The THUMOS table (mAP in % at each tIoU and the average), one row per run, then the warnings.

    Args:
        runs: the runs.
        names: row names (default: the run folders).
    """
    tious = sorted({t for run in runs for t in run.metrics})
    header = ["run", "config", "GPUs", "batch/GPU", "global batch", "backbone", "setting", "trainable params"]
    header += ["backbone trainable"]
    header += ["evaluated"] + [f"mAP@{t:g}" for t in tious] + ["avg"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    names = list(names) if names is not None else [run.work_dir for run in runs]
    for name, run in zip(names, runs):
        per_gpu = None if run.per_gpu_batch is None else f"{run.per_gpu_batch:g}"
        gpus = "?" if run.gpus is None else str(run.gpus)
        batches = ["-", "-"] if run.test_only else [
            per_gpu or "?", str(run.global_batch) if run.global_batch is not None else "?"]
        cells = [name, run.config_name or "?", f"{gpus} (test only)" if run.test_only else gpus, *batches,
                 run.backbone, run.setting,
                 _fmt_params(run.trainable_params, run.total_params),
                 _fmt_params(run.backbone_trainable, run.backbone_params), run.evaluated]
        cells += [_fmt(100 * run.metrics[t]) if t in run.metrics else "" for t in tious]
        cells.append(_fmt(None if run.average_mAP is None else 100 * run.average_mAP))
        lines.append("| " + " | ".join(cells) + " |")
    warnings = [f"- `{name}`: {w}" for name, run in zip(names, runs) for w in run.warnings]
    if warnings:
        lines += ["", "**Warnings**", ""] + warnings
    return "\n".join(lines) + "\n"
