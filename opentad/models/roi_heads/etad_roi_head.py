"""ETAD's second stage: sampled proposals refined by a cascade of proposal heads."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch
import torch.nn as nn

from opentad.models.utils.iou_tools import compute_iou_torch
from opentad.models.utils.tem_targets import tem_targets
from opentad.registry import ROI_HEADS, ConfigError, bind, build

__all__ = ["ETADRoIHead", "StageOptions", "match_ground_truth"]

logger = logging.getLogger(__name__)


@dataclass
class StageOptions:
    """``stages``: the number of cascade stages, each stage's loss weight and the IoU above which it regresses."""

    number: int
    loss_weight: Sequence[float]
    pos_iou_thresh: Sequence[float]


def match_ground_truth(gt_segments: Sequence[torch.Tensor], proposals: torch.Tensor) -> torch.Tensor:
    """``[B, K, 2]``: for each proposal of ``proposals [B, K, 2]`` the ground truth of its sample with the highest IoU.

    Ties go to the first ground truth (``max`` over ``compute_iou_torch``, as upstream).
    """
    matched = [gt[compute_iou_torch(gt, p).max(dim=1)[1]] for gt, p in zip(gt_segments, proposals)]
    return torch.stack(matched)


@ROI_HEADS.register_module()
class ETADRoIHead(nn.Module):
    """Sampled proposals -> ``stages.number`` x (RoI features -> proposal head -> refined proposals).

    Training: the proposal generator draws proposals (``training=True``); stage
    ``i`` pools their features with the RoI extractor, computes its losses and
    refines them for stage ``i + 1``. Targets are shared by the stages: the
    startness / endness of the ``tscale`` steps and, per proposal, the ground
    truth matched to the *initial* proposals (upstream's arithmetic). Losses are
    named ``{name}.s{i}``, those with ``loss`` in the name times ``stages.loss_weight[i]``.
    Test: every valid proposal; the refined proposals and the IoU scores are the
    means over the stages.

    State-dict keys: ``proposal_heads.{i}.*`` (the generator and the extractor hold none).

    Args:
        stages: :class:`StageOptions` (built by :meth:`from_config` from the ``stages`` dict).
        proposal_generator: e.g. :class:`ProposalMapSampling` (with ``tscale``).
        proposal_roi_extractor: e.g. ``ROIAlignExtractor``: ``(feats [B, C, T], proposals [B, K, 2]) -> [B, K, C, R]``.
        proposal_heads: one head per stage (e.g. :class:`ETADHead`).
    """

    def __init__(
        self,
        *,
        stages: StageOptions,
        proposal_generator: nn.Module,
        proposal_roi_extractor: nn.Module,
        proposal_heads: nn.ModuleList,
    ):
        super().__init__()
        self.tscale = proposal_generator.tscale
        self.stage_loss_weight = list(stages.loss_weight)
        self.proposal_generator = proposal_generator
        self.proposal_roi_extractor = proposal_roi_extractor
        self.proposal_heads = proposal_heads

    @classmethod
    def from_config(
        cls,
        *,
        stages: Mapping[str, Any],
        proposal_generator: Mapping[str, Any],
        proposal_roi_extractor: Mapping[str, Any],
        proposal_head: Mapping[str, Any],
        **kwargs: Any,
    ) -> Dict[str, Any]:
        """Build the generator, the extractor and one ``proposal_head`` per stage with ``loss.pos_iou_thresh`` set.

        Raises:
            ConfigError: bad ``stages`` keys, or fewer loss weights / thresholds than stages.
        """
        opts = bind(StageOptions, stages, path=f"{cls.__name__}.stages")
        if min(len(opts.loss_weight), len(opts.pos_iou_thresh)) < opts.number:
            raise ConfigError(
                f"{cls.__name__}.stages: number={opts.number} needs as many loss_weight and pos_iou_thresh "
                f"entries, got {list(opts.loss_weight)} and {list(opts.pos_iou_thresh)}"
            )
        heads = []
        for thresh in opts.pos_iou_thresh[: opts.number]:
            loss = dict(proposal_head.get("loss") or {}, pos_iou_thresh=thresh)
            heads.append(build(dict(proposal_head, loss=loss), ROI_HEADS))
        return dict(
            stages=opts,
            proposal_generator=build(proposal_generator, ROI_HEADS),
            proposal_roi_extractor=build(proposal_roi_extractor, ROI_HEADS),
            proposal_heads=nn.ModuleList(heads),
        )

    def prepare_shared_gt(
        self, gt_segments: Sequence[torch.Tensor], proposals: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Startness and endness ``[B, T]`` (int64 0/1, :func:`tem_targets`), matched ground truth ``[B, K, 2]``."""
        targets = tem_targets(gt_segments, self.tscale)
        return targets["startness"], targets["endness"], match_ground_truth(gt_segments, proposals)

    def forward_train(
        self, x: torch.Tensor, proposal_list, gt_segments, gt_labels, **kwargs
    ) -> Dict[str, torch.Tensor]:
        """Losses ``{"loss_pem.s0": ..., ...}`` of features ``x [B, C, T]`` (``proposal_list`` is not used)."""
        proposals = self.proposal_generator(bs=x.shape[0], device=x.device, training=True)  # [B, K, 2]
        gt_starts, gt_ends, matched = self.prepare_shared_gt(gt_segments, proposals)
        losses = {}
        for i, head in enumerate(self.proposal_heads):
            feats = self.proposal_roi_extractor(x, proposals)  # [B, K, C, R]
            stage_losses, proposals = head.forward_train(feats, proposals, gt_starts, gt_ends, matched)
            for name, value in stage_losses.items():
                losses[f"{name}.s{i}"] = value * self.stage_loss_weight[i] if "loss" in name else value
        return losses

    def forward_test(self, x: torch.Tensor, proposal_list=None, **kwargs) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(proposals [B, K, 2], scores [B, K, 2])``: the stages' means of refined proposals and IoU probabilities."""
        proposals = self.proposal_generator(bs=x.shape[0], device=x.device)
        refined: List[torch.Tensor] = []
        scores: List[torch.Tensor] = []
        for head in self.proposal_heads:
            feats = self.proposal_roi_extractor(x, proposals)
            proposals, score = head.forward_test(feats, proposals)
            refined.append(proposals)
            scores.append(score)
        return torch.stack(refined, dim=-1).mean(dim=-1), torch.stack(scores, dim=-1).mean(dim=-1)
