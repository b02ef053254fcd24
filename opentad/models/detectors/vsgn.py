"""VSGN (Zhao et al., ICCV 2021) as a :class:`TwoStageDetector`."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn

from opentad.models.detectors.base import BaseDetector
from opentad.models.detectors.two_stage import TwoStageDetector
from opentad.registry import DETECTORS

__all__ = ["VSGN", "boundary_scores"]

#: ``(tem_logits [B, 3, T], rpn_scores [B, N, K], roi_proposals [B, N, 2])``: upstream's raw predictions
VSGNPredictions = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def boundary_scores(tem_logits: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Start probability at each segment's start times end probability at its end.

    Each probability is the mean of the two steps around the (fractional)
    position: ``(p[floor(x)] + p[ceil(x)]) / 2``.

    Args:
        tem_logits: ``[3, T]`` start, end (and action) logits of one video.
        segments: ``[N, 2]`` within ``[0, T - 1]``.

    Returns:
        ``[N]``.
    """
    start, end = tem_logits.sigmoid()[:2]

    def at(prob: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (prob[torch.floor(x).long()] + prob[torch.ceil(x).long()]) * 0.5

    return at(start, segments[:, 0]) * at(end, segments[:, 1])


@DETECTORS.register_module()
class VSGN(TwoStageDetector):
    """``VSGNPyramidProj -> VSGNFPN -> VSGNRPNHead -> VSGNRoIHead``.

    Training is :class:`TwoStageDetector`'s: the first stage's decoded
    segments (with their graph, so the second stage's loss also trains the
    first stage's regression) go to the RoI head. At test time the refined
    segments, clamped to the window, score ``rpn_score * start * end``
    (:func:`boundary_scores`); with several classes the background (class 0)
    is dropped and upstream's threshold and top-k select the (segment, class)
    pairs, with one class every segment is kept. Every ``Conv1d`` / ``Linear``
    starts Xavier-uniform with zero bias (upstream's ``reset_params``).

    Args:
        **parts: ``projection``, ``neck``, ``rpn_head``, ``roi_head`` (and ``backbone``), as
            :class:`TwoStageDetector` takes them.
    """

    def __init__(self, **parts: Optional[nn.Module]):
        super().__init__(**parts)
        self.reset_params()

    def reset_params(self) -> None:
        """Xavier-uniform weights and zero biases of every ``Conv1d`` and ``Linear``."""
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward_test(self, inputs, masks, metas=None, infer_cfg=None) -> VSGNPredictions:
        """``(tem_logits [B, 3, tscale], rpn_scores [B, N, K], roi_proposals [B, N, 2])`` (upstream's layout)."""
        feats, masks = self.extract_feat(inputs, masks)
        tem_logits, proposals, rpn_scores = self.rpn_head.forward_test(feats, masks)
        return tem_logits, rpn_scores, self.roi_head.forward_test(feats, proposals)

    def video_predictions(self, predictions: VSGNPredictions) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Per video the clamped segments ``[N, 2]`` and scores ``[N, K']`` (``K' = K - 1`` without background)."""
        results = []
        for tem_logits, rpn_scores, segments in zip(*predictions):
            segments = segments.clamp(min=0, max=tem_logits.shape[-1] - 1)
            scores = rpn_scores * boundary_scores(tem_logits, segments).unsqueeze(-1)
            results.append((segments, scores if scores.shape[-1] == 1 else scores[:, 1:]))
        return results

    def select_candidates(
        self, proposals: torch.Tensor, scores: torch.Tensor, *, pre_nms_thresh: float, pre_nms_topk: int
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One class (``rpn_head.num_classes == 1``): every segment, label 0; else threshold and top-k.

        With one foreground class beside the background, a ``-inf`` column is
        appended so that the selection still thresholds and ranks (as upstream)
        instead of keeping every segment; it is never selected.
        """
        if self.rpn_head.num_classes == 1:
            return super().select_candidates(
                proposals, scores, pre_nms_thresh=pre_nms_thresh, pre_nms_topk=pre_nms_topk
            )
        if scores.shape[-1] == 1:
            scores = torch.cat((scores, torch.full_like(scores, float("-inf"))), dim=-1)
        return BaseDetector.select_candidates(
            self, proposals, scores, pre_nms_thresh=pre_nms_thresh, pre_nms_topk=pre_nms_topk
        )
