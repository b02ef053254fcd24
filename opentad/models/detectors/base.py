"""The detector frame: ``backbone -> projection -> neck -> rpn_head``, each optional.

Variants override small hooks (:meth:`BaseDetector.prepare_feat`,
:meth:`BaseDetector.run_backbone`, ...) instead of the forward passes. The
weight-decay rule of :meth:`BaseDetector.get_optim_groups` is
:func:`~opentad.models.detectors.optim_groups.split_by_decay`.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from opentad.models.detectors.optim_groups import split_by_decay
from opentad.models.detectors.raw_predictions import load_predictions, save_predictions
from opentad.models.utils import qlora as adapter_state
from opentad.models.utils.misc import resize_mask
from opentad.models.utils.post_processing import (
    batched_nms,
    convert_to_seconds,
    format_detections,
    select_topk_predictions,
)
from opentad.registry import BACKBONES, DETECTORS, HEADS, NECKS, PROJECTIONS, build

__all__ = ["BaseDetector"]

logger = logging.getLogger(__name__)

Predictions = Tuple[List[torch.Tensor], List[torch.Tensor]]
Results = Dict[str, List[Dict[str, Any]]]
ClassNames = Union[Sequence[str], Callable, None]


def _option(cfg: Optional[Mapping[str, Any]], key: str, default: Any) -> Any:
    return cfg[key] if cfg is not None and key in cfg else default


@DETECTORS.register_module(name=["BaseDetector", "SingleStageDetector"])
class BaseDetector(nn.Module):
    """Single-stage detector made of optional parts, registered also as ``SingleStageDetector``.

    Parts that are None are not attributes of the module's state, so state-dict
    keys are those of upstream OpenTAD (``projection.*``, ``neck.*``,
    ``rpn_head.*``, ``backbone.*``).

    Args:
        backbone: video backbone ``(inputs, masks) -> [B, C, T]`` or None (features given).
        projection: ``(x [B, C, T], masks [B, T]) -> (feats, masks)`` pyramid, or None.
        neck: ``(feats, masks) -> (feats, masks)``, or None.
        rpn_head: dense head with ``forward_train`` and ``forward_test``, or None.
    """

    def __init__(
        self,
        *,
        backbone: Optional[nn.Module] = None,
        projection: Optional[nn.Module] = None,
        neck: Optional[nn.Module] = None,
        rpn_head: Optional[nn.Module] = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.projection = projection
        self.neck = neck
        self.rpn_head = rpn_head

    @classmethod
    def from_config(
        cls,
        *,
        backbone: Optional[Mapping[str, Any]] = None,
        projection: Optional[Mapping[str, Any]] = None,
        neck: Optional[Mapping[str, Any]] = None,
        rpn_head: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Optional[nn.Module]]:
        """Build each configured part with its registry (BACKBONES, PROJECTIONS, NECKS, HEADS)."""
        return dict(
            backbone=build(backbone, BACKBONES),
            projection=build(projection, PROJECTIONS),
            neck=build(neck, NECKS),
            rpn_head=build(rpn_head, HEADS),
        )

    @property
    def with_backbone(self) -> bool:
        return self.backbone is not None

    @property
    def with_projection(self) -> bool:
        return self.projection is not None

    @property
    def with_neck(self) -> bool:
        return self.neck is not None

    @property
    def with_rpn_head(self) -> bool:
        return self.rpn_head is not None

    # ------------------------------------------------------------------ hooks
    def run_backbone(self, inputs: torch.Tensor, masks: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Backbone features (``[B, C, T]``, or ``[B, C, T, H, W]`` for AFSD's e2e neck) and their masks
        (resized by nearest sampling to ``T`` if the length changed)."""
        x = self.backbone(inputs, masks)
        return x, resize_mask(masks, x.shape[2])

    def prepare_feat(self, x: torch.Tensor, masks: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Hook between backbone and projection (identity here)."""
        return x, masks

    def extract_feat(self, inputs: torch.Tensor, masks: torch.Tensor) -> Tuple[Any, Any]:
        """``backbone -> prepare_feat -> projection -> neck``.

        Args:
            inputs: features ``[B, C, T]`` or frames ``[B, N, C, T, H, W]``.
            masks: ``[B, T]`` bool.

        Returns:
            ``(feats, masks)``: the pyramid (or tensor) and its masks.
        """
        x = inputs
        if self.with_backbone:
            x, masks = self.run_backbone(inputs, masks)
        x, masks = self.prepare_feat(x, masks)
        if self.with_projection:
            x, masks = self.projection(x, masks)
        if self.with_neck:
            x, masks = self.neck(x, masks)
        return x, masks

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        inputs: torch.Tensor,
        masks: torch.Tensor,
        metas: Sequence[Mapping[str, Any]],
        gt_segments: Optional[Sequence[torch.Tensor]] = None,
        gt_labels: Optional[Sequence[torch.Tensor]] = None,
        return_loss: bool = True,
        infer_cfg: Optional[Mapping[str, Any]] = None,
        post_cfg: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> Union[Dict[str, torch.Tensor], Results]:
        """Losses (``return_loss=True``) or detections in seconds.

        Args:
            inputs, masks, metas, gt_segments, gt_labels: a collated batch (docs/architecture.md).
            return_loss: training (losses) or inference (results).
            infer_cfg: the ``inference`` config (raw-prediction saving/loading).
            post_cfg: the ``post_processing`` config.
            **kwargs: ``ext_cls`` for inference: the class names, or an external
                classifier ``(video, segments, scores) -> (segments, labels, scores)``.

        Returns:
            ``{"cls_loss": ..., "reg_loss": ..., "cost": sum}`` or
            ``{video_name: [{"segment": [s, e], "label": name, "score": p}, ...]}``.
        """
        if return_loss:
            return self.forward_train(inputs, masks, metas, gt_segments=gt_segments, gt_labels=gt_labels, **kwargs)
        return self.forward_detection(inputs, masks, metas, infer_cfg, post_cfg, **kwargs)

    def forward_train(self, inputs, masks, metas, gt_segments, gt_labels) -> Dict[str, torch.Tensor]:
        """Losses of the head plus ``cost``, their sum.

        Raises:
            ValueError: no ground truth was given.
        """
        if gt_segments is None or gt_labels is None:
            raise ValueError(f"{type(self).__name__}.forward_train needs gt_segments and gt_labels")
        feats, masks = self.extract_feat(inputs, masks)
        losses = dict(self.rpn_head.forward_train(feats, masks, gt_segments=gt_segments, gt_labels=gt_labels))
        losses["cost"] = sum(losses.values())
        return losses

    def forward_test(self, inputs, masks, metas=None, infer_cfg=None) -> Predictions:
        """Per-sample proposals ``[P, 2]`` (snippet units) and scores ``[P, C]``."""
        feats, masks = self.extract_feat(inputs, masks)
        return self.rpn_head.forward_test(feats, masks)

    def forward_detection(self, inputs, masks, metas, infer_cfg, post_cfg, ext_cls: ClassNames = None) -> Results:
        """Predict (or load raw predictions), then post-process."""
        if _option(infer_cfg, "load_from_raw_predictions", False):
            predictions = load_predictions(metas, infer_cfg)
        else:
            predictions = self.forward_test(inputs, masks, metas, infer_cfg)
            if _option(infer_cfg, "save_raw_prediction", False):
                save_predictions(predictions, metas, infer_cfg["folder"])
        return self.post_processing(predictions, metas, post_cfg, ext_cls)

    def video_predictions(self, predictions: Any) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Hook: what :meth:`forward_test` returned as per-video ``(proposals [P, 2], scores [P, C])``."""
        return list(zip(predictions[0], predictions[1]))

    def select_candidates(
        self, proposals: torch.Tensor, scores: torch.Tensor, *, pre_nms_thresh: float, pre_nms_topk: int
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hook: one video's pre-NMS candidates ``(segments [K, 2], scores [K], labels [K])``.

        Here :func:`select_topk_predictions` of ``proposals [P, 2]`` and ``scores [P, C]``.
        """
        return select_topk_predictions(proposals, scores, pre_nms_thresh=pre_nms_thresh, pre_nms_topk=pre_nms_topk)

    def window_nms(
        self, segments: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, post_cfg: Mapping[str, Any]
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hook: NMS of one sample's candidates, here ``post_cfg["nms"]`` unless windows slide (the engine's then)."""
        nms_cfg = _option(post_cfg, "nms", None)
        if post_cfg["sliding_window"] or nms_cfg is None:
            return segments, scores, labels
        return batched_nms(segments, scores, labels, **nms_cfg)

    @torch.no_grad()
    def post_processing(
        self,
        predictions: Predictions,
        metas: Sequence[Mapping[str, Any]],
        post_cfg: Mapping[str, Any],
        ext_cls: ClassNames = None,
    ) -> Results:
        """Upstream single-stage post-processing, per video.

        Threshold and top-k over (point, class) pairs (``pre_nms_thresh``
        0.001, ``pre_nms_topk`` 2000), NMS with ``post_cfg["nms"]`` unless
        ``post_cfg["sliding_window"]`` (the test engine then merges the windows
        of a video and runs NMS once), conversion to seconds with the metas,
        then naming: ``ext_cls`` as a list maps class indices to names, as a
        callable re-labels the segments; None keeps the indices.

        Raises:
            KeyError: ``post_cfg`` lacks ``sliding_window``.
        """
        if post_cfg is None or "sliding_window" not in post_cfg:
            raise KeyError("post_processing config needs 'sliding_window' (set by the test engine from the dataset)")
        topk = dict(
            pre_nms_thresh=_option(post_cfg, "pre_nms_thresh", 0.001),
            pre_nms_topk=_option(post_cfg, "pre_nms_topk", 2000),
        )
        results: Results = {}
        for (proposals, scores), meta in zip(self.video_predictions(predictions), metas):
            proposals, scores = proposals.detach().float().cpu(), scores.detach().float().cpu()
            segments, scores, labels = self.select_candidates(proposals, scores, **topk)
            segments, scores, labels = self.window_nms(segments, scores, labels, post_cfg)
            segments = convert_to_seconds(segments, meta)
            video = meta["video_name"]
            if callable(ext_cls):
                segments, labels, scores = ext_cls(video, segments, scores)
                detections = format_detections(segments, labels, scores)
            elif ext_cls is None:
                detections = format_detections(segments, labels.long().tolist(), scores)
            else:
                detections = format_detections(segments, labels, scores, class_names=ext_cls)
            results.setdefault(video, []).extend(detections)
        return results

    # -------------------------------------------------------------- optimizer
    #: hook: parameter names ending so never decay, whatever their module (variants add their own)
    no_decay_suffixes: Tuple[str, ...] = ("bias", "rel_pe")
    #: hook: names ending so decay when no rule above matched them (e.g. VideoMambaSuite's ``A_log``, ``D``)
    decay_suffixes: Tuple[str, ...] = ()

    def get_optim_groups(self, cfg: Mapping[str, Any]) -> List[Dict[str, Any]]:
        """Two AdamW groups for the non-backbone parameters (upstream ``paramwise=True``).

        Weights of ``nn.Linear`` / ``nn.Conv1d`` decay with ``cfg["weight_decay"]``;
        biases, norm weights, ``Scale`` / ``AffineDropPath`` scales and ``rel_pe`` do not.

        Args:
            cfg: the optimizer config with ``lr`` and ``weight_decay``.

        Raises:
            ValueError: a parameter fits neither group (the message names it).
        """
        decay, no_decay = split_by_decay(
            self, no_decay_suffixes=self.no_decay_suffixes, decay_suffixes=self.decay_suffixes
        )
        return [
            dict(params=[decay[k] for k in sorted(decay)], weight_decay=cfg["weight_decay"], lr=cfg["lr"]),
            dict(params=[no_decay[k] for k in sorted(no_decay)], weight_decay=0.0, lr=cfg["lr"]),
        ]

    # ------------------------------------------------------------ checkpoints
    # what a checkpoint holds, the hooks opentad.utils.checkpoint calls: the adapter-state interface decides
    checkpoint_state_dict = adapter_state.checkpoint_state
    load_checkpoint_state_dict = adapter_state.load_checkpoint_state
