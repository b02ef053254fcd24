"""AFSD (Lin et al., CVPR 2021) on features, as a :class:`TwoStageDetector` with hooks.

``neck`` (``AFSDNeck``: pyramid and frame-level feature) -> ``rpn_head`` (``AFSDCoarseHead``:
coarse distances and classes, boundary regions) -> ``roi_head`` (``AFSDRefineHead``: boundary-pooled
refinement, centerness). Both stages' losses need both stages' outputs, so the first stage returns
no loss and :meth:`AFSD.roi_train` computes them all (:class:`MultiSegmentLoss`, :class:`StartEndLoss`).
AFSD predicts the classes itself (softmax, class 0 the background).
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.dense_heads.afsd_coarse_head import AFSDCoarseOutput
from opentad.models.detectors.two_stage import TwoStageDetector
from opentad.models.losses.multi_segment_loss import MultiSegmentLoss
from opentad.models.losses.start_end_loss import StartEndLoss
from opentad.registry import DETECTORS

__all__ = ["AFSD"]

Feats = Tuple[List[torch.Tensor], torch.Tensor]  # (pyramid levels [B, C, T_l], frame level [B, C, frame_num])


@DETECTORS.register_module()
class AFSD(TwoStageDetector):
    """AFSD: the loss settings come from ``roi_head`` (``overlap_thresh``, ``loc_weight``,
    ``loc_bounded``, ``use_smooth_l1``) and the clip from ``rpn_head`` (``frame_num``, ``feat_t``).

    Ground truth is normalised by the input length ``T`` (which must equal ``rpn_head.feat_t``),
    predictions come back in input steps (``segment / frame_num * T``, upstream's
    ``/ clip_len * window_size``). With one foreground class every refined segment is kept;
    otherwise the pre-NMS selection of :class:`BaseDetector` picks (segment, class) pairs.

    Args:
        neck: ``(x [B, C, T], masks [B, T]) -> ((pyramid, frame_level), level_masks)``.
        rpn_head: coarse head (``forward_train(pyramid) -> AFSDCoarseOutput``).
        roi_head: refinement head (``forward_train(frame_level, loc_feats, conf_feats, segments,
            frame_segments) -> AFSDRefineOutput``).
        projection, backbone: optional, as :class:`BaseDetector`.
    """

    def __init__(
        self,
        *,
        neck: nn.Module,
        rpn_head: nn.Module,
        roi_head: nn.Module,
        projection: Optional[nn.Module] = None,
        backbone: Optional[nn.Module] = None,
    ):
        super().__init__(backbone=backbone, projection=projection, neck=neck, rpn_head=rpn_head, roi_head=roi_head)
        self.num_classes = roi_head.num_classes
        self.clip_len = rpn_head.frame_num
        self.scale_factor = rpn_head.frame_num // rpn_head.feat_t
        self.loss = MultiSegmentLoss(
            num_classes=self.num_classes,
            clip_len=self.clip_len,
            overlap_thresh=roi_head.overlap_thresh,
            negpos_ratio=1.0,
            loc_weight=roi_head.loc_weight,
            loc_bounded=roi_head.loc_bounded,
            use_smooth_l1=roi_head.use_smooth_l1,
        )
        self.start_end_loss = StartEndLoss(clip_len=self.clip_len, scale_factor=self.scale_factor)

    @classmethod
    def from_config(
        cls,
        *,
        neck: Mapping[str, Any],
        rpn_head: Mapping[str, Any],
        roi_head: Mapping[str, Any],
        projection: Optional[Mapping[str, Any]] = None,
        backbone: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> Dict[str, Optional[nn.Module]]:
        """As :meth:`TwoStageDetector.from_config`, with ``neck`` and ``rpn_head`` required."""
        return super().from_config(
            roi_head=roi_head, backbone=backbone, projection=projection, neck=neck, rpn_head=rpn_head
        )

    # ------------------------------------------------------------------ hooks
    def rpn_train(self, feats: Feats, masks, gt_segments, gt_labels) -> Tuple[Dict[str, torch.Tensor], AFSDCoarseOutput]:
        """No loss yet; the coarse outputs go to :meth:`roi_train`."""
        return {}, self.rpn_head.forward_train(feats[0])

    def roi_train(self, feats: Feats, masks, coarse: AFSDCoarseOutput, gt_segments, gt_labels) -> Dict[str, torch.Tensor]:
        """Refinement, then every loss (upstream's keys and order) of both stages.

        Args:
            feats: the neck's ``(pyramid, frame_level)``; masks: its level masks (``masks[0]`` ``[B, T]``).
            coarse: :meth:`rpn_train`'s outputs.
            gt_segments: per video ``[N, 2]`` in input steps; gt_labels: per video ``[N]`` (0-based).
        """
        refine = self.roi_head.forward_train(
            feats[1], coarse.loc_feats, coarse.conf_feats, coarse.segments, coarse.frame_segments
        )
        length = masks[0].shape[1]
        gt_segments = [segments / length for segments in gt_segments]
        gt_labels = [labels + 1 for labels in gt_labels]  # class 0 is the background of the softmax
        losses = self.loss(
            coarse.loc, coarse.conf, refine.prop_loc, refine.prop_conf, refine.center, coarse.priors,
            gt_segments, gt_labels,
        )
        losses.update(self.start_end_loss(*refine[:2], *refine[5:], gt_segments))
        return losses

    def rpn_test(self, feats: Feats, masks) -> Tuple[AFSDCoarseOutput, None]:
        """The coarse outputs (no scores of their own: they are combined in :meth:`roi_test`)."""
        return self.rpn_head.forward_test(feats[0]), None

    def roi_test(self, feats: Feats, masks, coarse: AFSDCoarseOutput) -> Tuple[torch.Tensor, torch.Tensor]:
        """Refined segments ``[B, K, 2]`` in input steps and foreground scores ``[B, K, num_classes - 1]``.

        A segment is the coarse one moved by the refinement offsets (in half coarse widths), clamped
        to the clip; its scores are the mean of both stages' softmax times the centerness.
        """
        refine = self.roi_head.forward_test(
            feats[1], coarse.loc_feats, coarse.conf_feats, coarse.segments, coarse.frame_segments
        )
        loc = coarse.loc
        loc = 0.5 * (loc[..., :1] + loc[..., 1:]) * refine.prop_loc + loc
        centre = coarse.priors[:, :1] * self.clip_len
        segments = torch.cat([centre - loc[..., :1], centre + loc[..., 1:]], dim=-1).clamp_(min=0, max=self.clip_len)
        scores = (F.softmax(coarse.conf, dim=-1) + F.softmax(refine.prop_conf, dim=-1)) / 2.0
        scores = scores * refine.center.sigmoid()
        return segments / self.clip_len * masks[0].shape[1], scores[..., 1:]

    def video_predictions(self, predictions: Sequence[Any]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Per video the refined segments ``[K, 2]`` and their scores ``[K, num_classes - 1]``."""
        _, _, segments, scores = predictions
        return list(zip(segments, scores))
