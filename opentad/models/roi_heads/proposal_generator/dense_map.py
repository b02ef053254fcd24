"""The dense boundary-matching proposal map of BMN: every (duration, start) pair of a window."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn as nn

from opentad.registry import ROI_HEADS

__all__ = ["DenseProposalMap", "dense_proposal_map"]


def dense_proposal_map(tscale: int, dscale: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Proposal ``[d, t]`` is ``[t, t + d + 1]`` when it ends inside the window.

    Args:
        tscale: number of start positions ``T``.
        dscale: number of durations ``D`` (durations 1..D steps).

    Returns:
        ``(proposal_map [D, T, 2] float32, valid_mask [D, T] bool)``; invalid
        entries (``t + d + 1 > T``) hold ``[0, 0]``.
    """
    starts = torch.arange(tscale, dtype=torch.float32).expand(dscale, tscale)
    ends = starts + torch.arange(1, dscale + 1, dtype=torch.float32)[:, None]
    valid = ends <= tscale
    proposal_map = torch.stack((starts, ends), dim=-1) * valid[..., None]
    return proposal_map, valid


@ROI_HEADS.register_module()
class DenseProposalMap(nn.Module):
    """Holds the map of :func:`dense_proposal_map` (non-persistent buffers: no state-dict keys, as upstream).

    Args:
        tscale: window length ``T`` in steps.
        dscale: largest proposal duration ``D`` in steps.

    Raises:
        ValueError: ``tscale`` or ``dscale`` below 1.
    """

    def __init__(self, *, tscale: int, dscale: int):
        super().__init__()
        if tscale < 1 or dscale < 1:
            raise ValueError(f"DenseProposalMap needs tscale, dscale >= 1, got {tscale}, {dscale}")
        self.tscale = tscale
        self.dscale = dscale
        proposal_map, valid_mask = dense_proposal_map(tscale, dscale)
        self.register_buffer("proposal_map", proposal_map, persistent=False)
        self.register_buffer("valid_mask", valid_mask, persistent=False)

    def forward(self, **kwargs) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(proposal_map [D, T, 2], valid_mask [D, T])``."""
        return self.proposal_map, self.valid_mask

    def extra_repr(self) -> str:
        return f"tscale={self.tscale}, dscale={self.dscale}"
