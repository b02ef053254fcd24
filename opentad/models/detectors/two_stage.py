"""The two-stage frame: :class:`BaseDetector` plus a second-stage ``roi_head``.

``[backbone ->] [projection ->] [neck ->] [rpn_head ->] roi_head``. The first
stage (optional) scores the sequence and proposes segments; the second refines
and scores them. BMN, GTAD, TSI, ETAD, VSGN and AFSD are this class plus hooks.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from opentad.models.detectors.base import BaseDetector
from opentad.registry import DETECTORS, ROI_HEADS, build

__all__ = ["TwoStageDetector"]

#: ``(rpn_proposals, rpn_scores, roi_proposals, roi_scores)``, each a list over the batch (or None)
TwoStagePredictions = Tuple[Optional[List[torch.Tensor]], ...]


@DETECTORS.register_module()
class TwoStageDetector(BaseDetector):
    """A first-stage ``rpn_head`` (optional) and a second-stage ``roi_head`` on the extracted features.

    Subclasses change one step through the hooks :meth:`rpn_train`, :meth:`roi_train`,
    :meth:`rpn_test` and :meth:`roi_test`, not the forward passes.

    Args:
        roi_head: second stage with ``forward_train(feats, proposals, gt_segments, gt_labels) -> losses``
            and ``forward_test(feats, proposals) -> (proposals, scores)``.
        backbone, projection, neck: as :class:`BaseDetector`.
        rpn_head: first stage with ``forward_train(feats, masks, gt_segments=, gt_labels=) -> (losses, proposals)``
            and ``forward_test(feats, masks) -> (proposals, scores)``, or None.
    """

    def __init__(
        self,
        *,
        roi_head: nn.Module,
        backbone: Optional[nn.Module] = None,
        projection: Optional[nn.Module] = None,
        neck: Optional[nn.Module] = None,
        rpn_head: Optional[nn.Module] = None,
    ):
        super().__init__(backbone=backbone, projection=projection, neck=neck, rpn_head=rpn_head)
        self.roi_head = roi_head

    @classmethod
    def from_config(
        cls,
        *,
        roi_head: Mapping[str, Any],
        backbone: Optional[Mapping[str, Any]] = None,
        projection: Optional[Mapping[str, Any]] = None,
        neck: Optional[Mapping[str, Any]] = None,
        rpn_head: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Optional[nn.Module]]:
        """As :meth:`BaseDetector.from_config`, plus ``roi_head`` from ``ROI_HEADS``."""
        parts = super().from_config(backbone=backbone, projection=projection, neck=neck, rpn_head=rpn_head)
        return dict(parts, roi_head=build(roi_head, ROI_HEADS))

    @property
    def with_roi_head(self) -> bool:
        return self.roi_head is not None

    # ------------------------------------------------------------------ hooks
    def rpn_train(self, feats, masks, gt_segments, gt_labels) -> Tuple[Dict[str, torch.Tensor], Any]:
        """First-stage losses and proposals (``({}, None)`` without an ``rpn_head``)."""
        if not self.with_rpn_head:
            return {}, None
        return self.rpn_head.forward_train(feats, masks, gt_segments=gt_segments, gt_labels=gt_labels)

    def roi_train(self, feats, masks, proposals, gt_segments, gt_labels) -> Dict[str, torch.Tensor]:
        """Second-stage losses (upstream passes no masks to the ``roi_head``)."""
        return self.roi_head.forward_train(feats, proposals, gt_segments, gt_labels)

    def rpn_test(self, feats, masks) -> Tuple[Any, Any]:
        """First-stage ``(proposals, scores)`` (``(None, None)`` without an ``rpn_head``)."""
        if not self.with_rpn_head:
            return None, None
        return self.rpn_head.forward_test(feats, masks)

    def roi_test(self, feats, masks, proposals) -> Tuple[Any, Any]:
        """Second-stage ``(proposals, scores)``."""
        return self.roi_head.forward_test(feats, proposals)

    # ---------------------------------------------------------------- forward
    def forward_train(self, inputs, masks, metas, gt_segments, gt_labels) -> Dict[str, torch.Tensor]:
        """First- and second-stage losses plus ``cost``, their sum.

        Raises:
            ValueError: no ground truth was given.
        """
        if gt_segments is None or gt_labels is None:
            raise ValueError(f"{type(self).__name__}.forward_train needs gt_segments and gt_labels")
        feats, masks = self.extract_feat(inputs, masks)
        rpn_losses, proposals = self.rpn_train(feats, masks, gt_segments, gt_labels)
        losses = dict(rpn_losses)
        losses.update(self.roi_train(feats, masks, proposals, gt_segments, gt_labels))
        losses["cost"] = sum(losses.values())
        return losses

    def forward_test(self, inputs, masks, metas=None, infer_cfg=None) -> TwoStagePredictions:
        """``(rpn_proposals, rpn_scores, roi_proposals, roi_scores)``: lists over the batch."""
        feats, masks = self.extract_feat(inputs, masks)
        rpn_proposals, rpn_scores = self.rpn_test(feats, masks)
        roi_proposals, roi_scores = self.roi_test(feats, masks, rpn_proposals)
        return rpn_proposals, rpn_scores, roi_proposals, roi_scores

    # ------------------------------------------------------- post-processing
    def video_predictions(self, predictions: TwoStagePredictions) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Per video the second-stage segments ``[K, 2]`` and scores ``rpn [K] * roi [K, C]`` (upstream's product)."""
        _, rpn_scores, roi_proposals, roi_scores = predictions
        return [(p, r.unsqueeze(-1) * s) for p, r, s in zip(roi_proposals, rpn_scores, roi_scores)]

    def select_candidates(
        self, proposals: torch.Tensor, scores: torch.Tensor, *, pre_nms_thresh: float, pre_nms_topk: int
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One class: every segment, label 0 (upstream applies no threshold or top-k then); else as the base."""
        if scores.shape[-1] == 1:
            return proposals, scores.squeeze(-1), torch.zeros(scores.shape[0], dtype=torch.long)
        return super().select_candidates(
            proposals, scores, pre_nms_thresh=pre_nms_thresh, pre_nms_topk=pre_nms_topk
        )
