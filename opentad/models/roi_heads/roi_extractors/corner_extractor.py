"""VSGN's boundary ("corner") features: three feature columns around each proposal's start and end."""
from __future__ import annotations

import torch
import torch.nn as nn

from opentad.registry import ROI_HEADS

__all__ = ["CornerExtractor"]


@ROI_HEADS.register_module()
class CornerExtractor(nn.Module):
    """Features at ``b - w``, ``b`` and ``b + w`` for each boundary ``b`` of each proposal.

    A proposal ``[s, e]`` (snippet units) is clamped to ``[0, tscale - 1]``,
    ``w = (e - s + 1) / beta``; a position ``p`` reads feature column
    ``clamp(trunc(p / base_stride), 0, T - 1)`` (truncation toward zero, as
    upstream's integer cast). No parameters, so no state-dict key.

    Args:
        beta: the boundary neighbourhood is the proposal's "+1" length over ``beta``.
        base_stride: stride of the feature map in snippet units.
        tscale: the window length in snippets.
    """

    def __init__(self, *, beta: float = 8.0, base_stride: int = 2, tscale: int = 256):
        super().__init__()
        self.beta = beta
        self.base_stride = base_stride
        self.tscale = tscale

    def forward(self, feats: torch.Tensor, proposals: torch.Tensor) -> torch.Tensor:
        """Boundary features.

        Args:
            feats: ``[B, C, T]`` (the finest level).
            proposals: ``[B, N, 2]``.

        Returns:
            ``[B * N, C, 6]``: start's left, centre, right columns, then end's.

        Raises:
            ValueError: the proposals are not ``[B, N, 2]`` for the features' ``B``.
        """
        if proposals.dim() != 3 or proposals.shape[0] != feats.shape[0] or proposals.shape[-1] != 2:
            raise ValueError(
                f"CornerExtractor expects proposals [B, N, 2] with B={feats.shape[0]}, got {tuple(proposals.shape)}"
            )
        boxes = proposals.detach().clamp(min=0.0, max=self.tscale - 1)
        width = (boxes[..., 1] - boxes[..., 0] + 1) / self.beta  # [B, N]
        columns = []
        for bound in boxes.unbind(-1):  # start, end: [B, N]
            points = torch.stack((bound - width, bound, bound + width), dim=-1)  # [B, N, 3]
            columns.append((points / self.base_stride).to(torch.long).clamp(min=0, max=feats.shape[-1] - 1))
        index = torch.cat(columns, dim=-1)  # [B, N, 6]
        batch, num, _ = index.shape
        gathered = feats.gather(2, index.reshape(batch, 1, -1).expand(-1, feats.shape[1], -1))  # [B, C, N * 6]
        return gathered.reshape(batch, -1, num, 6).permute(0, 2, 1, 3).reshape(batch * num, -1, 6)
