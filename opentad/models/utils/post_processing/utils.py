"""Post-processing around NMS: pre-NMS selection, conversion to seconds, window merging.

The order of operations follows upstream OpenTAD. For each video a detector

1. keeps the top candidates (:func:`select_topk_predictions`),
2. runs :func:`~.nms.batched_nms` unless the dataset slides windows,
3. converts snippet units to seconds (:func:`convert_to_seconds`),
4. turns tensors into result dicts (:func:`format_detections`).

With sliding windows the test engine gathers the result dicts of all windows
of a video and runs NMS once on them (:func:`merge_window_results`).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .nms import batched_nms

__all__ = [
    "boundary_choose",
    "convert_to_seconds",
    "select_topk_predictions",
    "format_detections",
    "merge_window_results",
]

logger = logging.getLogger(__name__)

Result = Dict[str, Any]


def _meta_value(meta: Mapping[str, Any], key: str, why: str) -> Any:
    if key not in meta:
        name = meta.get("video_name", "?")
        raise KeyError(
            f"convert_to_seconds: meta of video {name!r} has no {key!r} (needed {why}); keys: {sorted(meta)}"
        )
    return meta[key]


def convert_to_seconds(segments: torch.Tensor, meta: Mapping[str, Any]) -> torch.Tensor:
    """Snippet (feature) units to seconds, clamped to ``[0, duration]`` as upstream.

    * ``meta["fps"] == -1`` (resize setting, ActivityNet / HACS):
      ``seconds = segments / resize_length * duration``.
    * otherwise (padding or sliding window, THUMOS / Ego4D):
      ``seconds = (segments * snippet_stride + window_start_frame + offset_frames) / fps``
      with ``window_start_frame`` 0 when absent.

    Values ``<= 0`` are multiplied by 0 (so a negative one becomes ``-0.0``,
    as upstream) and values ``>= duration`` become ``duration``.

    Args:
        segments: ``[N, 2]`` in snippet units (not modified).
        meta: the sample's metas: ``fps``, ``duration``, and ``resize_length``
            or ``snippet_stride``, ``offset_frames`` (``window_start_frame``).

    Returns:
        ``[N, 2]`` seconds, same dtype.

    Raises:
        KeyError: a needed meta key is missing (the message names it).
    """
    fps = _meta_value(meta, "fps", "always")
    duration = _meta_value(meta, "duration", "to clamp")
    if fps == -1:
        resize_length = _meta_value(meta, "resize_length", "when fps == -1")
        segments = segments / resize_length * duration
    else:
        stride = _meta_value(meta, "snippet_stride", "when fps != -1")
        offset = _meta_value(meta, "offset_frames", "when fps != -1")
        start = meta.get("window_start_frame", 0)
        segments = (segments * stride + start + offset) / fps
    if segments.shape[0] > 0:
        segments[segments <= 0.0] *= 0.0
        over = segments >= duration
        segments[over] = segments[over] * 0.0 + duration
    return segments


def select_topk_predictions(
    segments: torch.Tensor, scores: torch.Tensor, *, pre_nms_thresh: float = 0.001, pre_nms_topk: int = 2000
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Upstream single-stage pre-NMS filter: threshold, then top-k over (point, class) pairs.

    With one class, every point is kept (no threshold, no top-k), as upstream.

    Args:
        segments: ``[N, 2]`` candidate segments.
        scores: ``[N, C]`` per-class probabilities.
        pre_nms_thresh: keep pairs with probability ``> pre_nms_thresh``.
        pre_nms_topk: then keep the ``pre_nms_topk`` highest.

    Returns:
        ``segments [K, 2]``, ``scores [K]`` and ``labels [K]`` int64.

    Raises:
        ValueError: ``scores`` is not ``[N, C]`` with ``N`` matching ``segments``.
    """
    if scores.dim() != 2 or scores.shape[0] != segments.shape[0]:
        raise ValueError(f"scores must be [N, C] with N = {segments.shape[0]}; got {tuple(scores.shape)}")
    num_classes = scores.shape[1]
    if num_classes == 1:
        flat = scores.squeeze(-1)
        return segments, flat, torch.zeros(flat.shape[0], dtype=torch.long, device=flat.device)
    prob = scores.flatten()
    keep = prob > pre_nms_thresh
    prob = prob[keep]
    flat_idx = keep.nonzero(as_tuple=True)[0]
    num_topk = min(pre_nms_topk, flat_idx.size(0))
    prob, order = prob.sort(descending=True)
    prob = prob[:num_topk].clone()
    flat_idx = flat_idx[order[:num_topk]].clone()
    points = torch.div(flat_idx, num_classes, rounding_mode="floor")
    labels = torch.fmod(flat_idx, num_classes)
    return segments[points], prob, labels


def format_detections(
    segments: torch.Tensor,
    labels: Union[torch.Tensor, Sequence[Any]],
    scores: torch.Tensor,
    class_names: Optional[Sequence[str]] = None,
) -> List[Result]:
    """Result dicts ``{"segment": [s, e], "label": name, "score": p}`` rounded as upstream.

    Boundaries are rounded to 2 decimals and scores to 4.

    Args:
        segments: ``[K, 2]`` seconds; scores: ``[K]``.
        labels: ``[K]`` class indices (then ``class_names`` maps them) or a
            sequence of ``K`` names (from an external classifier).
        class_names: index to name; needed when ``labels`` is a tensor.

    Raises:
        ValueError: ``labels`` is a tensor and ``class_names`` is None, or lengths differ.
    """
    if isinstance(labels, torch.Tensor):
        if class_names is None:
            raise ValueError("format_detections: class_names is needed to name tensor labels")
        labels = [class_names[int(label)] for label in labels.tolist()]
    if not len(segments) == len(labels) == len(scores):
        raise ValueError(f"format_detections: {len(segments)} segments, {len(labels)} labels, {len(scores)} scores")
    return [
        dict(segment=[round(v, 2) for v in seg], label=label, score=round(score, 4))
        for seg, label, score in zip(segments.tolist(), labels, scores.tolist())
    ]


def merge_window_results(
    results_by_video: Mapping[str, Sequence[Result]],
    nms_cfg: Optional[Mapping[str, Any]],
    *,
    backend: str = "auto",
) -> Dict[str, List[Result]]:
    """Merge sliding-window detections: one NMS per video over all its windows.

    As upstream's test engine: the (already rounded) result dicts of a video
    become float32 tensors, labels are numbered in order of first appearance
    (this order breaks score ties between classes), :func:`batched_nms` runs
    with ``nms_cfg``, and the output is rounded again.

    Args:
        results_by_video: ``{video_name: [result dict, ...]}``, all windows together.
        nms_cfg: the ``post_processing.nms`` config; None returns the input unchanged (copied).
        backend: kernel backend for :func:`batched_nms`.

    Returns:
        ``{video_name: [result dict, ...]}``, highest score first.
    """
    if nms_cfg is None:
        return {video: [dict(r) for r in results] for video, results in results_by_video.items()}
    merged = {}
    for video, results in results_by_video.items():
        names: List[Any] = []
        index: Dict[Any, int] = {}
        for r in results:
            if r["label"] not in index:
                index[r["label"]] = len(names)
                names.append(r["label"])
        segments = torch.tensor([r["segment"] for r in results], dtype=torch.float32)
        scores = torch.tensor([r["score"] for r in results], dtype=torch.float32)
        labels = torch.tensor([index[r["label"]] for r in results], dtype=torch.float32)
        segments, scores, labels = batched_nms(segments, scores, labels, backend=backend, **nms_cfg)
        merged[video] = format_detections(segments, labels, scores, names)
    return merged


def boundary_choose(score: torch.Tensor) -> torch.Tensor:
    """Boundary candidates of the proposal detectors (BMN, TSI, ETAD): ``[B, T]`` probabilities -> ``[B, T]`` bool.

    A step is a candidate when its score exceeds half the sequence's maximum or
    is a local peak (equal to the maximum over itself and its two neighbours).
    """
    high = score > score.max(dim=1, keepdim=True)[0] * 0.5
    peak = score == F.max_pool1d(score, kernel_size=3, stride=1, padding=1)
    return high | peak
