"""BMN (Lin et al., ICCV 2019) as a :class:`TwoStageDetector`: TEM boundaries and a dense proposal map."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from opentad.models.detectors.two_stage import TwoStageDetector
from opentad.models.utils.post_processing import batched_nms, boundary_choose
from opentad.registry import DETECTORS

__all__ = ["BMN", "map_candidates"]

logger = logging.getLogger(__name__)

#: ``(tem logits [B, 2, T], map logits [B, 2, D, T])``, upstream's raw predictions
BMNPredictions = Tuple[Any, Any]
SCORE_TYPES = ("iou", "iou*s*e")


def map_candidates(prob: torch.Tensor, iou_map: torch.Tensor, score_type: str = "iou") -> Tuple[torch.Tensor, torch.Tensor]:
    """One window's proposals: map entries whose start and end are boundary candidates.

    With ``p = prob``, a start (end) candidate is a step chosen by
    :func:`boundary_choose` on ``p[0]`` (``p[1]``), plus the first (last) step.
    Entry ``[d, t]`` (valid when ``t + d < T``) is kept when ``t`` is a start and
    ``t + d`` an end candidate; its segment is ``[t, t + d + 1]`` and its score
    ``sigmoid(map[0]) * sigmoid(map[1])``, times ``p[0, t] * p[1, t + d]`` with
    ``score_type="iou*s*e"``. Order: duration-major, as upstream.

    Args:
        prob: ``[2, T]`` start/end probabilities (:meth:`BMN.boundary_probabilities`).
        iou_map: ``[2, D, T]`` confidence (classification, regression) logits.
        score_type: ``"iou"`` or ``"iou*s*e"``.

    Returns:
        ``(segments [K, 2], scores [K])`` in steps.

    Raises:
        ValueError: unknown ``score_type``.
    """
    if score_type not in SCORE_TYPES:
        raise ValueError(f"post_processing.score_type must be one of {SCORE_TYPES}, got {score_type!r}")
    conf = iou_map.sigmoid()
    conf = conf[0] * conf[1]
    dscale, tscale = conf.shape
    starts = boundary_choose(prob[0:1])[0]
    ends = boundary_choose(prob[1:2])[0]
    starts[0], ends[-1] = True, True
    t = torch.arange(tscale, device=conf.device).expand(dscale, tscale)
    end = t + torch.arange(dscale, device=conf.device)[:, None]
    keep = (end < tscale) & starts[t] & ends[end.clamp(max=tscale - 1)]
    t, end = t[keep], end[keep]
    segments = torch.stack((t, end + 1), dim=-1).float()
    scores = conf[keep]
    if score_type == "iou*s*e":
        scores = prob[0, t] * prob[1, end] * scores
    return segments, scores


@DETECTORS.register_module()
class BMN(TwoStageDetector):
    """``projection -> rpn_head`` (TEM) and ``roi_head`` (proposal map), labels from an external classifier.

    Conv weights are Xavier-uniform with zero biases (upstream's ``reset_params``).
    Inference returns upstream's raw predictions ``(tem logits [B, 2, T], map
    logits [B, 2, D, T])``; post-processing (:meth:`post_processing`) needs an
    external classifier (``post_processing.external_cls``), as BMN only scores
    class-agnostic proposals.

    Args:
        projection: e.g. ``ConvSingleProj``.
        rpn_head: a ``TemporalEvaluationHead``.
        roi_head: a ``StandardProposalMapHead`` whose ``proposal_generator`` has ``tscale``.
        neck, backbone: optional.
    """

    def __init__(
        self,
        *,
        projection: nn.Module,
        rpn_head: nn.Module,
        roi_head: nn.Module,
        neck: Optional[nn.Module] = None,
        backbone: Optional[nn.Module] = None,
    ):
        super().__init__(backbone=backbone, projection=projection, neck=neck, rpn_head=rpn_head, roi_head=roi_head)
        self.reset_params()

    @classmethod
    def from_config(
        cls,
        *,
        projection: Mapping[str, Any],
        rpn_head: Mapping[str, Any],
        roi_head: Mapping[str, Any],
        neck: Optional[Mapping[str, Any]] = None,
        backbone: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Optional[nn.Module]]:
        """As :meth:`TwoStageDetector.from_config`, with ``projection`` and ``rpn_head`` required."""
        return super().from_config(
            roi_head=roi_head, backbone=backbone, projection=projection, neck=neck, rpn_head=rpn_head
        )

    #: hook: the layers :meth:`reset_params` initialises (TSI adds transposed and 3D convs)
    xavier_types: Tuple[type, ...] = (nn.Conv1d, nn.Conv2d)

    def reset_params(self) -> None:
        """Xavier-uniform weights and zero biases for every ``xavier_types`` layer (the backbone's too, as upstream)."""
        for module in self.modules():
            if isinstance(module, self.xavier_types):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    # ---------------------------------------------------------------- inference
    def forward_test(self, inputs, masks, metas=None, infer_cfg=None) -> BMNPredictions:
        """``(rpn_test, roi_test)``: TEM logits ``[B, 2, T]`` and map logits ``[B, 2, D, T]``."""
        feats, masks = self.extract_feat(inputs, masks)
        return self.rpn_test(feats, masks), self.roi_test(feats, masks, None)

    @property
    def tscale(self) -> int:
        return self.roi_head.proposal_generator.tscale

    def boundary_probabilities(self, tem: Any) -> torch.Tensor:
        """Hook: start/end probabilities ``[B, 2, T]`` of the ``rpn_head``'s test output (here ``sigmoid``)."""
        return tem.sigmoid()

    def window_candidates(self, predictions: BMNPredictions, post_cfg: Mapping[str, Any]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Hook: per window ``(segments [K, 2], scores [K, 1])`` of :func:`map_candidates`."""
        score_type = post_cfg["score_type"] if "score_type" in post_cfg else "iou"
        out = []
        for prob, iou_map in zip(self.boundary_probabilities(predictions[0]), predictions[1]):
            segments, scores = map_candidates(prob, iou_map, score_type)
            out.append((segments, scores[:, None]))
        return out

    def video_predictions(self, predictions: List[Tuple[torch.Tensor, torch.Tensor]]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """The candidates :meth:`post_processing` made with :meth:`window_candidates`, unchanged."""
        return predictions

    def window_nms(self, segments, scores, labels, post_cfg):
        """Upstream's NMS of every window (sliding or not); with ``post_cfg["proposal"]`` on segments / ``tscale``."""
        if "nms" not in post_cfg or post_cfg["nms"] is None:
            return segments, scores, labels
        scale = self.tscale if "proposal" in post_cfg and post_cfg["proposal"] else None
        if scale is None:
            return batched_nms(segments, scores, labels, **post_cfg["nms"])
        segments, scores, labels = batched_nms(segments / scale, scores, labels, **post_cfg["nms"])
        return segments * scale, scores, labels

    @torch.no_grad()
    def post_processing(self, predictions: BMNPredictions, metas: Sequence[Mapping[str, Any]], post_cfg, ext_cls=None):
        """Candidates of each window, NMS, seconds, then the classifier's labels (the base's loop).

        Raises:
            ValueError: ``ext_cls`` is not an external classifier (a callable), since BMN's proposals have no class.
            KeyError: ``post_cfg`` lacks ``sliding_window``.
        """
        if not callable(ext_cls):
            raise ValueError(
                f"{type(self).__name__} scores class-agnostic proposals: set post_processing.external_cls "
                "(e.g. dict(type='UntrimmedNetTHUMOSClassifier', path=..., topk=2))"
            )
        if post_cfg is None or "sliding_window" not in post_cfg:
            raise KeyError("post_processing config needs 'sliding_window' (set by the test engine from the dataset)")
        return super().post_processing(self.window_candidates(predictions, post_cfg), metas, post_cfg, ext_cls)

    # ---------------------------------------------------------------- optimizer
    def get_optim_groups(self, cfg: Mapping[str, Any]) -> List[Dict[str, Any]]:
        """Upstream's three groups: projection (``weight_decay * 10``), rpn_head, roi_head (``weight_decay``).

        As upstream, a parameter goes to the first group whose name (``projection``,
        ``rpn_head``, ``roi_head``) it contains; others (outside the backbone) are
        left out of the optimizer, with a warning.
        """
        groups: Dict[str, List[nn.Parameter]] = {"projection": [], "rpn_head": [], "roi_head": []}
        for name, param in self.named_parameters():
            if name.startswith("backbone"):
                continue
            part = next((key for key in groups if key in name), None)
            if part is None:
                logger.warning("%s.get_optim_groups: %s is not in the optimizer (as upstream)", type(self).__name__, name)
                continue
            groups[part].append(param)
        decay = cfg["weight_decay"]
        return [
            dict(params=groups["projection"], weight_decay=decay * 10, lr=cfg["lr"]),
            dict(params=groups["rpn_head"], weight_decay=decay, lr=cfg["lr"]),
            dict(params=groups["roi_head"], weight_decay=decay, lr=cfg["lr"]),
        ]
