"""ETAD: a temporal evaluation head and a cascade of sampled-proposal heads (upstream ``ETAD``)."""
from __future__ import annotations

import logging
from typing import Any, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from opentad.models.bricks.fc import xavier_init
from opentad.models.detectors.bmn import BMN
from opentad.models.utils.post_processing import boundary_choose
from opentad.registry import DETECTORS

__all__ = ["ETAD", "sampled_candidates"]

logger = logging.getLogger(__name__)

#: upstream's raw predictions: ``(tem_score [B, 2, T], iou [B, K, 2], proposals [B, K, 2])``
ETADPredictions = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def sampled_candidates(
    tem_score: torch.Tensor, iou: torch.Tensor, proposals: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """One window's refined proposals whose start and end steps are boundary candidates.

    A start (end) candidate is a step chosen by :func:`boundary_choose` on
    ``tem_score[0]`` (``tem_score[1]``), plus the first (last) step; a proposal's
    steps are its boundaries truncated to integers and clipped to ``[0, T - 1]``.

    Args:
        tem_score: ``[2, T]`` start/end probabilities.
        iou: ``[K, 2]`` IoU probabilities; the score is their product.
        proposals: ``[K, 2]`` refined proposals in steps.

    Returns:
        ``(segments [K', 2], scores [K'])``, in the proposals' order.
    """
    tscale = tem_score.shape[-1]
    starts = boundary_choose(tem_score[0:1])[0]
    ends = boundary_choose(tem_score[1:2])[0]
    starts[0], ends[-1] = True, True
    keep = starts[proposals[:, 0].int().clip(0, tscale - 1)] & ends[proposals[:, 1].int().clip(0, tscale - 1)]
    return proposals[keep], (iou[..., 0] * iou[..., 1])[keep]


@DETECTORS.register_module()
class ETAD(BMN):
    """``projection -> neck -> (rpn_head: start/end logits, roi_head: refined proposals and IoU scores)``.

    BMN's frame (external classifier, NMS on every window, sliding or not)
    with ETAD's parts: the first stage (a ``TemporalEvaluationHead``) gives
    start / end probabilities; the second
    (:class:`~opentad.models.roi_heads.ETADRoIHead`) refines every valid
    proposal and scores it with two IoU probabilities. The candidates of a
    window are :func:`sampled_candidates`.

    Every ``Conv1d`` / ``Linear`` is re-initialised Xavier-uniform with zero
    bias (upstream's ``reset_params``, over all modules as upstream).

    Args:
        projection, neck, rpn_head, roi_head: the required parts.
        backbone: optional end-to-end backbone.
    """

    def __init__(
        self,
        *,
        projection: nn.Module,
        neck: nn.Module,
        rpn_head: nn.Module,
        roi_head: nn.Module,
        backbone: Optional[nn.Module] = None,
    ):
        super().__init__(backbone=backbone, projection=projection, neck=neck, rpn_head=rpn_head, roi_head=roi_head)

    @classmethod
    def from_config(
        cls,
        *,
        projection: Mapping[str, Any],
        neck: Mapping[str, Any],
        rpn_head: Mapping[str, Any],
        roi_head: Mapping[str, Any],
        backbone: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ):
        """As :meth:`BMN.from_config`, with the neck required too."""
        return super().from_config(
            projection=projection, neck=neck, rpn_head=rpn_head, roi_head=roi_head, backbone=backbone
        )

    def reset_params(self) -> None:
        """Xavier-uniform weights and zero biases for every ``Conv1d`` and ``Linear``."""
        xavier_init(self)

    def forward_test(self, inputs, masks, metas=None, infer_cfg=None) -> ETADPredictions:
        """Upstream's raw predictions ``(tem_score [B, 2, T], iou [B, K, 2], proposals [B, K, 2])``."""
        feats, masks = self.extract_feat(inputs, masks)
        tem_score = self.rpn_test(feats, masks).sigmoid()
        proposals, iou = self.roi_test(feats, masks, None)
        return tem_score, iou, proposals

    def window_candidates(
        self, predictions: ETADPredictions, post_cfg: Mapping[str, Any]
    ) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Per window ``(segments [K', 2], scores [K', 1])`` of :func:`sampled_candidates`."""
        out = []
        for tem_score, iou, proposals in zip(*predictions):
            segments, scores = sampled_candidates(tem_score, iou, proposals)
            out.append((segments, scores[:, None]))
        return out
