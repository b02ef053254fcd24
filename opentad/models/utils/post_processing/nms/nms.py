"""1D non-maximum suppression with upstream OpenTAD's config keys and results.

:func:`batched_nms` takes the ``post_processing.nms`` dict of an upstream
config (``use_soft_nms``, ``sigma``, ``iou_threshold``, ``min_score``,
``max_seg_num``, ``multiclass``, ``voting_thresh``, ``method``, ``t1``, ``t2``)
and returns what upstream returns for it, quirks included; see
docs/postprocessing.md for the behaviour in full. The kernels run in the
compiled ``nms_1d_cpu`` op when it is built and in pure PyTorch otherwise,
with the same results.
"""

from __future__ import annotations

import logging
from typing import Tuple

import torch

from opentad.ops import select_op

from .nms_torch import nms_1d_torch, soft_nms_1d_torch

__all__ = ["batched_nms", "nms_1d", "soft_nms_1d", "seg_voting"]

logger = logging.getLogger(__name__)

Detections = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def nms_1d(
    segs: torch.Tensor, scores: torch.Tensor, *, iou_threshold: float, max_num: int = 0, backend: str = "auto"
) -> torch.Tensor:
    """Hard NMS on CPU float32 tensors; kept indices, highest score first.

    Args:
        segs: ``[N, 2]`` (start, end); scores: ``[N]``.
        iou_threshold: suppress a segment whose IoU with a kept one is ``>=`` this.
        max_num: keep at most this many (0: no limit).
        backend: ``"auto"``, ``"compiled"`` or ``"torch"`` (see :mod:`opentad.ops`).

    Returns:
        ``[K]`` int64 indices into ``segs``.

    Raises:
        ImportError: ``backend="compiled"`` and the op is not built.
    """
    segs, scores = _as_cpu_f32(segs), _as_cpu_f32(scores)
    if select_op("nms_1d_cpu", backend) is None:
        return nms_1d_torch(segs, scores, iou_threshold, max_num)
    return torch.ops.opentad.nms_1d(segs, scores, float(iou_threshold), int(max_num))


def soft_nms_1d(
    segs: torch.Tensor,
    scores: torch.Tensor,
    *,
    iou_threshold: float,
    sigma: float,
    min_score: float,
    method: int = 2,
    t1: float = 0.0,
    t2: float = 0.0,
    max_num: int = 0,
    backend: str = "auto",
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Soft-NMS on CPU float32 tensors (arguments as in :func:`soft_nms_1d_torch`).

    Returns:
        ``dets [K, 3]`` (start, end, decayed score) in selection order, and
        ``inds [K]`` int64 indices into ``segs``.

    Raises:
        ImportError: ``backend="compiled"`` and the op is not built.
    """
    segs, scores = _as_cpu_f32(segs), _as_cpu_f32(scores)
    kwargs = dict(iou_threshold=float(iou_threshold), sigma=float(sigma), min_score=float(min_score))
    kwargs.update(method=int(method), t1=float(t1), t2=float(t2), max_num=int(max_num))
    if select_op("nms_1d_cpu", backend) is None:
        return soft_nms_1d_torch(segs, scores, **kwargs)
    return torch.ops.opentad.softnms_1d(segs, scores, **kwargs)


def _as_cpu_f32(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to(device="cpu", dtype=torch.float32).contiguous()


def seg_voting(nms_segs: torch.Tensor, all_segs: torch.Tensor, all_scores: torch.Tensor, iou_threshold: float):
    """Score-weighted boundary voting ("box voting") as upstream does it.

    Each kept segment is replaced by the average of every input segment whose
    IoU with it is ``>= iou_threshold``, weighted by the input scores (not the
    decayed ones). The IoU here has no ``1e-6`` term. A kept segment with no
    neighbour of positive score becomes NaN, as upstream.

    Args:
        nms_segs: ``[M, 2]`` kept segments.
        all_segs: ``[N, 2]`` all segments given to NMS; all_scores: ``[N]``.

    Returns:
        ``[M, 2]`` refined segments.
    """
    num_nms, num_all = nms_segs.shape[0], all_segs.shape[0]
    kept = nms_segs[:, None].expand(num_nms, num_all, 2)
    every = all_segs[None, :].expand(num_nms, num_all, 2)
    inter = (torch.minimum(kept[:, :, 1], every[:, :, 1]) - torch.maximum(kept[:, :, 0], every[:, :, 0])).clamp(min=0)
    kept_len = kept[:, :, 1] - kept[:, :, 0]
    every_len = every[:, :, 1] - every[:, :, 0]
    iou = inter / (kept_len + every_len - inter)
    weights = (iou >= iou_threshold).to(all_scores.dtype) * all_scores[None, :]
    weights /= torch.sum(weights, dim=1, keepdim=True)
    return weights @ all_segs


def _suppress(
    segs, scores, labels, *, use_soft_nms, iou_threshold, min_score, max_seg_num, sigma, method, t1, t2, backend
):
    """NMS of one group (a class, or everything): kept segments, scores, labels."""
    if use_soft_nms:
        dets, inds = soft_nms_1d(
            segs, scores, iou_threshold=iou_threshold, sigma=sigma, min_score=min_score,
            method=method, t1=t1, t2=t2, max_num=max(int(max_seg_num), 0), backend=backend,
        )  # fmt: skip
        return dets[:, :2].clone(), dets[:, 2].clone(), labels[inds]
    if min_score > 0:  # hard NMS never changes scores, so filter first (strictly above)
        valid = scores > min_score
        segs, scores, labels = segs[valid], scores[valid], labels[valid]
    inds = nms_1d(segs, scores, iou_threshold=iou_threshold, max_num=max(int(max_seg_num), 0), backend=backend)
    return segs[inds], scores[inds], labels[inds]


def batched_nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    iou_threshold: float = 0.0,
    min_score: float = 0.0,
    max_seg_num: int = 100,
    use_soft_nms: bool = True,
    multiclass: bool = True,
    sigma: float = 0.5,
    voting_thresh: float = 0.0,
    method: int = 2,
    t1: float = 0.0,
    t2: float = 0.0,
    backend: str = "auto",
) -> Detections:
    """NMS of one video's detections, with upstream OpenTAD's keys and results.

    * ``multiclass=True``: each class (in ``torch.unique`` order) is suppressed
      on its own, each capped at ``max_seg_num``; voting is never applied.
    * ``multiclass=False``: one class-agnostic pass; labels follow their
      segments. If ``voting_thresh > 0`` the kept segments are refined by
      :func:`seg_voting` over *all* input segments and their input scores.
    * Soft-NMS (``use_soft_nms=True``) decays with ``method`` (0 hard,
      1 linear, 2 Gaussian (default; ``iou_threshold`` unused), 3 improved
      Gaussian with ``t1``, ``t2``) and drops a segment whose decayed score is
      ``< min_score``, except the first one selected in each group, which is
      kept whatever its score. Hard NMS keeps segments with score
      ``> min_score`` (strictly) when ``min_score > 0``.
    * Finally everything is sorted by score (descending, ``torch.sort``
      order for ties) and cut to ``max_seg_num``. Upstream quirk kept:
      ``max_seg_num=0`` returns nothing and a negative value drops that many
      from the end (while the per-group kernels treat ``<= 0`` as no limit).

    Args:
        segments: ``[N, 2]`` (start, end), any float dtype or device.
        scores: ``[N]``.
        labels: ``[N]`` class indices, any dtype (kept in the output).
        iou_threshold, min_score, max_seg_num, use_soft_nms, multiclass,
            sigma, voting_thresh, method, t1, t2: upstream's ``nms`` config keys.
        backend: ``"auto"``, ``"compiled"`` or ``"torch"`` for the kernels.

    Returns:
        ``segments [K, 2]`` float32, ``scores [K]`` float32 and ``labels [K]``
        (dtype of ``labels``), on the CPU, highest score first.

    Raises:
        ImportError: ``backend="compiled"`` and the ``nms_1d_cpu`` op is not built.
        ValueError: unknown backend, or shapes that do not match.
    """
    if segments.shape[0] == 0:
        return torch.zeros([0, 2]), torch.zeros([0]), torch.zeros([0], dtype=labels.dtype)
    if (
        segments.dim() != 2
        or segments.shape[1] != 2
        or scores.shape != segments.shape[:1]
        or labels.shape != scores.shape
    ):
        raise ValueError(
            f"batched_nms expects segments [N, 2], scores [N], labels [N]; got {tuple(segments.shape)}, "
            f"{tuple(scores.shape)}, {tuple(labels.shape)}"
        )
    segs = segments.detach().float().cpu()
    scores = scores.detach().float().cpu()
    labels = labels.detach().cpu()
    cfg = dict(use_soft_nms=use_soft_nms, iou_threshold=iou_threshold, min_score=min_score, max_seg_num=max_seg_num)
    cfg.update(sigma=sigma, method=method, t1=t1, t2=t2, backend=backend)
    if multiclass:
        groups = []
        for class_id in torch.unique(labels):
            idx = torch.where(labels == class_id)[0]
            groups.append(_suppress(segs[idx], scores[idx], labels[idx], **cfg))
        new_segs, new_scores, new_labels = (torch.cat(parts) for parts in zip(*groups))
    else:
        new_segs, new_scores, new_labels = _suppress(segs, scores, labels, **cfg)
        if voting_thresh > 0:
            new_segs = seg_voting(new_segs, segs, scores, voting_thresh)
    order = new_scores.sort(descending=True)[1][: min(max_seg_num, new_segs.shape[0])]
    return new_segs[order], new_scores[order], new_labels[order]
