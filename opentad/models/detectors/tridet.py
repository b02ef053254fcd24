"""TriDet (Shi et al., CVPR 2023) as a :class:`PyramidDetector`."""
from __future__ import annotations

from typing import Tuple

import torch

from opentad.models.detectors.pyramid import PyramidDetector
from opentad.registry import DETECTORS

__all__ = ["TriDet"]


@DETECTORS.register_module()
class TriDet(PyramidDetector):
    """SGP feature pyramid (``TriDetProj``) and Trident head (``TriDetHead``).

    Outside training (inference, validation losses) features are zero-padded
    (mask False) to ``max_seq_len``, or, when longer, to the next multiple of
    the largest ``stride * sgp_win_size`` (``stride`` where the window is 1)
    over the levels; in training they enter as the pipeline made them, as
    upstream. The head predicts one segment per (point, class), so the pre-NMS
    selection picks each candidate's own class's segment.

    Args:
        projection: a projection with ``max_seq_len`` and ``sgp_win_size``.
        rpn_head: a head whose ``prior_generator`` has ``strides``.
        neck, backbone: optional.

    Raises:
        ValueError: ``sgp_win_size`` and the strides differ in number.
    """

    window_attr = "sgp_win_size"

    def prepare_feat(self, x: torch.Tensor, masks: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Outside training, :meth:`PyramidDetector.prepare_feat` (``[B, C, T]``, ``[B, T]``)."""
        return (x, masks) if self.training else super().prepare_feat(x, masks)

    def select_candidates(
        self, proposals: torch.Tensor, scores: torch.Tensor, *, pre_nms_thresh: float, pre_nms_topk: int
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Upstream's pre-NMS selection over (point, class) pairs, each with its class's segment.

        Args:
            proposals: ``[P, C, 2]`` class-specific segments of one video.
            scores: ``[P, C]``.
            pre_nms_thresh, pre_nms_topk: see :func:`select_topk_predictions`.

        Returns:
            ``(segments [K, 2], scores [K], labels [K])``.

        Raises:
            ValueError: ``proposals`` is not ``[P, C, 2]``.
        """
        if proposals.dim() != 3 or proposals.shape[:2] != scores.shape:
            raise ValueError(
                f"TriDet expects class-specific proposals [P, C, 2] matching scores {tuple(scores.shape)}, "
                f"got {tuple(proposals.shape)}"
            )
        segments, scores, labels = super().select_candidates(
            proposals, scores, pre_nms_thresh=pre_nms_thresh, pre_nms_topk=pre_nms_topk
        )
        return segments[torch.arange(segments.shape[0]), labels], scores, labels
