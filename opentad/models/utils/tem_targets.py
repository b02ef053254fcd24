"""Per-step boundary and action targets of the proposal detectors (BMN's TEM, ETAD, TSI, GTAD).

Step ``t`` of a sequence of ``T`` steps is the unit interval ``[t, t + 1]``.
Its *startness* is the largest share of it covered by a window of 3 steps
centred on a ground-truth start (``[s - 1.5, s + 1.5]``), its *endness* the
same around the ends, its *actionness* the largest share covered by a ground
truth itself (upstream's ``compute_ioa_torch`` of these windows against the
steps, maximised over the ground truths).

As upstream, the steps are an int64 tensor and ``compute_ioa_torch`` casts
its result to the anchors' dtype, so every target is truncated to an integer:
1 for a step the window (or segment) covers entirely, else 0. The returned
tensors are int64; the losses threshold them (``> pos_thresh``).
"""
from __future__ import annotations

from typing import Dict, Sequence

import torch

from opentad.models.utils.iou_tools import compute_ioa_torch

__all__ = ["TEM_TARGETS", "tem_targets"]

#: the target kinds, in upstream's order of ``gt_type``
TEM_TARGETS = ("startness", "endness", "actionness")

_HALF_WIDTH = 3.0 / 2  # upstream's boundary window of 3 steps


def _coverage(windows: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """``[T]``: the largest ioa of each step with any window ``[N, 2]``."""
    return compute_ioa_torch(windows, steps).max(dim=1)[0]


def tem_targets(gt_segments: Sequence[torch.Tensor], tscale: int) -> Dict[str, torch.Tensor]:
    """Startness, endness and actionness of every step.

    Args:
        gt_segments: per sample ``[N_b, 2]`` ground truth in steps (``N_b >= 1``).
        tscale: ``T``, the number of steps.

    Returns:
        ``{"startness": [B, T], "endness": [B, T], "actionness": [B, T]}``, int64 values 0 or 1.

    Raises:
        ValueError: a sample has no ground truth (the maximum over none is undefined, as upstream).
    """
    device = gt_segments[0].device
    steps = torch.stack((torch.arange(0, tscale), torch.arange(1, tscale + 1)), dim=1).to(device)
    out = {kind: [] for kind in TEM_TARGETS}
    for i, gt in enumerate(gt_segments):
        if gt.shape[0] == 0:
            raise ValueError(f"tem_targets: sample {i} has no ground-truth segment")
        starts, ends = gt[:, 0], gt[:, 1]
        out["startness"].append(_coverage(torch.stack((starts - _HALF_WIDTH, starts + _HALF_WIDTH), 1), steps))
        out["endness"].append(_coverage(torch.stack((ends - _HALF_WIDTH, ends + _HALF_WIDTH), 1), steps))
        out["actionness"].append(_coverage(gt, steps))
    return {kind: torch.stack(values) for kind, values in out.items()}
