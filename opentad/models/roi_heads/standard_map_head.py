"""Second stage of the proposal-map detectors: proposal map -> map features -> proposal head."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from opentad.registry import ROI_HEADS, build

__all__ = ["StandardProposalMapHead"]


@ROI_HEADS.register_module()
class StandardProposalMapHead(nn.Module):
    """``proposal_generator`` (the dense map), ``proposal_roi_extractor`` (its features), ``proposal_head``.

    BMN, GTAD and TSI use it with different extractors and heads. State-dict
    keys ``proposal_roi_extractor.*`` and ``proposal_head.*`` as upstream.

    Args:
        proposal_generator: ``() -> (proposal_map [D, T, 2], valid_mask [D, T])``.
        proposal_roi_extractor: ``x [B, C, T] -> [B, C', D, T]``.
        proposal_head: with ``forward_train(feats, proposal_map, valid_mask, gt_segments) -> losses``
            and ``forward_test(feats) -> [B, K, D, T]``.
    """

    def __init__(self, *, proposal_generator: nn.Module, proposal_roi_extractor: nn.Module, proposal_head: nn.Module):
        super().__init__()
        self.proposal_generator = proposal_generator
        self.proposal_roi_extractor = proposal_roi_extractor
        self.proposal_head = proposal_head

    @classmethod
    def from_config(
        cls,
        *,
        proposal_generator: Mapping[str, Any],
        proposal_roi_extractor: Mapping[str, Any],
        proposal_head: Mapping[str, Any],
        **kwargs: Any,
    ) -> Dict[str, nn.Module]:
        """Build the three parts from ``ROI_HEADS``."""
        return dict(
            proposal_generator=build(proposal_generator, ROI_HEADS),
            proposal_roi_extractor=build(proposal_roi_extractor, ROI_HEADS),
            proposal_head=build(proposal_head, ROI_HEADS),
        )

    def forward_train(
        self,
        x: torch.Tensor,
        proposal_list: Optional[Any],
        gt_segments: Sequence[torch.Tensor],
        gt_labels: Optional[Sequence[torch.Tensor]] = None,
        **kwargs: Any,
    ) -> Dict[str, torch.Tensor]:
        """The proposal head's losses on the features of the whole map (``proposal_list`` unused).

        Args:
            x: features ``[B, C, T]``.
            proposal_list: the first stage's proposals (None for a TEM head).
            gt_segments: per sample ``[K, 2]`` in steps.
            gt_labels: unused (class-agnostic proposals).
        """
        proposal_map, valid_mask = self.proposal_generator()
        feats = self.proposal_roi_extractor(x)
        return self.proposal_head.forward_train(feats, proposal_map, valid_mask, gt_segments)

    def forward_test(self, x: torch.Tensor, proposals: Optional[Any] = None, **kwargs: Any) -> torch.Tensor:
        """The proposal head's map ``[B, K, D, T]`` (logits) of features ``x [B, C, T]``."""
        return self.proposal_head.forward_test(self.proposal_roi_extractor(x))
