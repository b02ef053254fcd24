"""Inference over a test loader and evaluation (upstream OpenTAD's ``eval_one_epoch``).

Each rank runs its share of the test set (the unwrapped model: no collective
inside the forward, so ranks may run different numbers of batches), the
samples ``DistributedSampler`` repeats to even out ranks are left out, the
per-video results are gathered on every rank, and, when the dataset slides
windows, the windows of each video are merged and NMS runs once per video.
Rank 0 then saves (``post_processing.save_dict``) and evaluates them, and
appends them as an ``eval`` record to ``<work_dir>/metrics.jsonl`` (:mod:`opentad.cores.run_log`).
"""
from __future__ import annotations

import copy
import json
import logging
import os
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch
import torch.nn as nn
import tqdm
from torch.utils.data.distributed import DistributedSampler

from opentad.cores.distributed import gather_objects
from opentad.cores.run_log import METRICS_FILE, append_record
from opentad.cores.train_engine import autocast
from opentad.registry import EVALUATORS, ConfigError, build
from opentad.utils.misc import move_to_device, unwrap_model

__all__ = [
    "eval_one_epoch",
    "predict",
    "make_classifier",
    "merge_results",
    "evaluate_results",
    "append_eval_record",
]

logger = logging.getLogger(__name__)

Results = Dict[str, List[Dict[str, Any]]]


def _real_sample_count(loader) -> Optional[int]:
    """How many of this rank's samples are real (not repeats added by ``DistributedSampler``); None: all."""
    sampler = loader.sampler
    if not isinstance(sampler, DistributedSampler) or sampler.drop_last or sampler.shuffle:
        return None
    positions = range(sampler.rank, sampler.total_size, sampler.num_replicas)
    return sum(1 for p in positions if p < len(loader.dataset))


def _head(batch: Mapping[str, Any], n: int) -> Dict[str, Any]:
    return {k: (v[:n] if isinstance(v, (torch.Tensor, list, tuple)) else v) for k, v in batch.items()}


def merge_results(parts: List[Results]) -> Results:
    """Concatenate per-video result lists from several sources (batches or ranks), in order."""
    merged: Results = {}
    for part in parts:
        for video, detections in part.items():
            merged.setdefault(video, []).extend(detections)
    return merged


@torch.no_grad()
def predict(loader, model: nn.Module, *, device: torch.device, infer_cfg: Mapping[str, Any],
            post_cfg: Mapping[str, Any], class_names: Any, amp_dtype: Optional[torch.dtype] = None,
            show_progress: bool = True, classifier: Optional[Callable] = None) -> Results:
    """Detections of this rank's samples, ``{video_name: [detection, ...]}``.

    Args:
        loader: the test loader.
        model: the detector (a DDP wrapper is unwrapped).
        device: where batches go.
        infer_cfg: the ``inference`` section plus ``folder``.
        post_cfg: the ``post_processing`` section plus ``sliding_window``.
        class_names: the class names, passed to the detector as ``ext_cls`` unless ``classifier`` is given.
        amp_dtype: autocast dtype or None.
        show_progress: draw a tqdm bar with ETA.
        classifier: an external video classifier ``(video, segments, scores) -> (segments, labels, scores)``
            (:func:`make_classifier`), passed as ``ext_cls`` instead of the class names.
    """
    inner = unwrap_model(model)
    was_training = inner.training
    inner.eval()
    remaining = _real_sample_count(loader)
    ext_cls = class_names if classifier is None else classifier
    parts: List[Results] = []
    for batch in tqdm.tqdm(loader, desc="test", disable=not show_progress, dynamic_ncols=True):
        size = len(batch["metas"])
        if remaining is not None:
            batch = _head(batch, max(0, min(size, remaining)))
            remaining -= size
            if not batch["metas"]:
                continue
        batch = move_to_device(batch, device)
        with autocast(device, amp_dtype):
            parts.append(inner(**batch, return_loss=False, infer_cfg=infer_cfg, post_cfg=post_cfg, ext_cls=ext_cls))
    inner.train(was_training)
    return merge_results(parts)


def evaluate_results(
    results: Results, evaluation_cfg: Mapping[str, Any], class_names: Optional[List[str]] = None
) -> Dict[str, Any]:
    """Build the evaluator of the ``evaluation`` section on in-memory ``results``, evaluate and log the table.

    ``class_names`` (the test dataset's class map) becomes the evaluator's ``class_map`` unless the
    section sets one: ground-truth labels outside it are an error, not a class with AP 0.
    """
    defaults = {} if class_names is None else dict(class_map=list(class_names))
    evaluator = build(evaluation_cfg, EVALUATORS, prediction_filename=dict(results=results), **defaults)
    logger.info("Evaluation starts...")
    metrics = evaluator.evaluate()
    evaluator.logging(logger)
    return metrics


def append_eval_record(
    work_dir: str, metrics: Mapping[str, Any], *, num_videos: int, epoch: Optional[int] = None
) -> None:
    """Append ``{"event": "eval", "time", "epoch", "num_videos", **metrics}`` to ``<work_dir>/metrics.jsonl``.

    The machine-readable trace of every evaluation, read by ``tools/summarize_results.py``;
    ``epoch`` is the training epoch (null for ``tools/test.py``).
    """
    append_record(os.path.join(work_dir, METRICS_FILE), "eval", dict(epoch=epoch, num_videos=num_videos, **metrics))


def _prepare_cfgs(loader, inference_cfg, post_cfg, work_dir: str):
    from opentad.datasets.base import SlidingWindowDataset

    infer = dict(copy.deepcopy(dict(inference_cfg or {})), folder=os.path.join(work_dir, "outputs"))
    if "save_raw_prediction" in infer and infer["save_raw_prediction"]:
        os.makedirs(infer["folder"], exist_ok=True)
    post = dict(copy.deepcopy(dict(post_cfg or {})), sliding_window=isinstance(loader.dataset, SlidingWindowDataset))
    return infer, post


def make_classifier(post_cfg: Optional[Mapping[str, Any]]) -> Optional[Callable]:
    """The external classifier of ``post_processing.external_cls`` (upstream's ``build_classifier``), or None.

    Raises:
        ConfigError: unknown classifier type or keys, or ``topk`` above the file's class count.
        FileNotFoundError, ClassifierFileError: the score file is missing or unusable (the message names it).
    """
    from opentad.models.utils.post_processing import build_classifier

    cfg = None if post_cfg is None or "external_cls" not in post_cfg else post_cfg["external_cls"]
    if cfg is None:
        return None
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"post_processing.external_cls: expected a dict with 'type' or None, got {cfg!r}")
    classifier = build_classifier(cfg)
    logger.info("External classifier %s (%s).", cfg["type"], cfg.get("path", "no file"))
    return classifier


def eval_one_epoch(
    loader,
    model: nn.Module,
    *,
    device: torch.device,
    inference_cfg: Optional[Mapping[str, Any]],
    post_cfg: Optional[Mapping[str, Any]],
    evaluation_cfg: Optional[Mapping[str, Any]],
    work_dir: str,
    rank: int = 0,
    amp_dtype: Optional[torch.dtype] = None,
    not_eval: bool = False,
    epoch: Optional[int] = None,
) -> Optional[Dict[str, Any]]:
    """Detect on the whole test set, then (rank 0) save and evaluate.

    Args:
        loader: the test loader (its dataset's ``class_map`` names the classes).
        model: the detector, or the EMA module to test the averaged weights.
        device: where batches go.
        inference_cfg: the ``inference`` section (not modified); raw predictions
            go to / come from ``<work_dir>/outputs``.
        post_cfg: the ``post_processing`` section (not modified).
        evaluation_cfg: the ``evaluation`` section (e.g. ``type="mAP"``).
        work_dir: the run folder (``result_detection.json`` with ``save_dict``).
        rank: this process's rank.
        amp_dtype: autocast dtype or None.
        not_eval: only infer (and save), do not evaluate.
        epoch: the training epoch, for the ``eval`` record of ``metrics.jsonl``.

    Returns:
        The evaluator's metrics on rank 0 (None elsewhere, or with ``not_eval``).
    """
    infer, post = _prepare_cfgs(loader, inference_cfg, post_cfg, work_dir)
    class_names = list(loader.dataset.class_map)
    local = predict(loader, model, device=device, infer_cfg=infer, post_cfg=post, class_names=class_names,
                    classifier=make_classifier(post),
                    amp_dtype=amp_dtype, show_progress=rank == 0)
    results = merge_results(gather_objects(local))
    if rank != 0:
        return None
    if post["sliding_window"]:
        from opentad.models.utils.post_processing import merge_window_results

        results = merge_window_results(results, post["nms"] if "nms" in post else None)
    logger.info("Detections for %d videos.", len(results))
    if "save_dict" in post and post["save_dict"]:
        path = os.path.join(work_dir, "result_detection.json")
        with open(path, "w", encoding="utf8") as handle:
            json.dump(dict(results=results), handle)
        logger.info("Saved detections to %s", path)
    if not_eval or evaluation_cfg is None:
        return None
    metrics = evaluate_results(results, evaluation_cfg, class_names)
    append_eval_record(work_dir, metrics, num_videos=len(results), epoch=epoch)
    return metrics
