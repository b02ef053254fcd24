"""RoI feature extraction over 1D features (upstream ``ROIAlignExtractor``)."""

from __future__ import annotations

from typing import List, Sequence, Union

import torch
from torch import nn

from opentad.registry import ROI_HEADS

from .align1d import Align1DLayer

__all__ = ["ROIAlignExtractor"]

Proposals = Union[torch.Tensor, Sequence[torch.Tensor]]
METHODS = ("torchvision", "align1d")


@ROI_HEADS.register_module()
class ROIAlignExtractor(nn.Module):
    """Pools each (extended) proposal into ``roi_size`` bins of the feature map.

    Proposals ``[s, e]`` (snippet units) are first widened by
    ``extend_ratio * (e - s)`` on both sides and divided by ``base_stride``.

    Args:
        roi_size: bins per proposal.
        extend_ratio: context added on each side, as a fraction of the length.
        base_stride: stride of the feature map in snippet units.
        fpn_extract: pool each proposal from a pyramid level chosen by its
            length (level ``ceil(log2(len / (base_scale * base_stride)))``).
        base_scale: proposal length that stays on level 0.
        method: ``"torchvision"`` (``torchvision.ops.roi_align``, aligned) or
            ``"align1d"`` (:class:`Align1DLayer`, compiled or fallback).
        deterministic: round features and proposals to float16 and pool in
            float64 (upstream's trick for reproducible results).

    Raises:
        ValueError: unknown ``method``.
    """

    def __init__(
        self,
        *,
        roi_size: int = 8,
        extend_ratio: float = 0.5,
        base_stride: int = 1,
        fpn_extract: bool = False,
        base_scale: int = 8,
        method: str = "torchvision",
        deterministic: bool = False,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"ROIAlignExtractor: method={method!r} is not one of {list(METHODS)}")
        self.roi_size = roi_size
        self.extend_ratio = extend_ratio
        self.base_stride = base_stride
        self.fpn_extract = fpn_extract
        self.base_scale = base_scale
        self.method = method
        self.deterministic = deterministic
        if method == "align1d":
            self.align1d = Align1DLayer(roi_size, ratio=0)

    def forward(self, feat_list, proposals: Proposals) -> torch.Tensor:
        """Proposal features.

        Args:
            feat_list: ``[B, C, T]`` or a list of pyramid levels (the first is
                used unless ``fpn_extract``).
            proposals: ``[B, K, 2]`` or a list of ``[K_b, 2]`` (snippet units).

        Returns:
            ``[B, K, C, roi_size]`` for a tensor of proposals, else
            ``[sum K_b, C, roi_size]``.

        Raises:
            TypeError: ``feat_list`` is neither a tensor nor a list.
        """
        if self.fpn_extract:
            return self._forward_pyramid(feat_list, proposals)
        if isinstance(feat_list, (list, tuple)):
            feat = feat_list[0]
        elif isinstance(feat_list, torch.Tensor):
            feat = feat_list
        else:
            raise TypeError(f"ROIAlignExtractor: feat_list must be a tensor or a list, got {type(feat_list).__name__}")
        return self._align(feat, self._extend(proposals))

    def _forward_pyramid(self, feat_list: Sequence[torch.Tensor], proposals: Sequence[torch.Tensor]) -> torch.Tensor:
        num_levels = len(feat_list)
        every = torch.cat(list(proposals), dim=0)  # [sum K, 2]
        scale = (every[:, 1] - every[:, 0]).clamp(min=1e-6)
        level = torch.ceil(torch.log2(scale / (self.base_scale * self.base_stride)))
        level = level.clamp(min=0, max=num_levels - 1).long()
        batch = torch.cat([torch.full((p.shape[0],), i) for i, p in enumerate(proposals)]).to(every.device)
        out = feat_list[0].new_zeros(every.shape[0], feat_list[0].shape[1], self.roi_size)
        for i in range(num_levels):
            idxs = (level == i).nonzero(as_tuple=False).squeeze(1)
            if idxs.numel() > 0:
                rois = torch.cat((batch[idxs, None].to(every.dtype), self._extend(every[idxs]) / 2**i), dim=1)
                out[idxs] = self._align_tool(feat_list[i], rois).squeeze(-1)
        return out

    def _extend(self, proposals: Proposals) -> Proposals:
        def extend(p: torch.Tensor) -> torch.Tensor:
            length = p[..., 1] - p[..., 0]
            widened = torch.stack((p[..., 0] - self.extend_ratio * length, p[..., 1] + self.extend_ratio * length), -1)
            return widened / self.base_stride

        if isinstance(proposals, torch.Tensor):
            return extend(proposals)
        return [extend(p) for p in proposals]

    def _align(self, feature: torch.Tensor, proposals: Proposals) -> torch.Tensor:
        if isinstance(proposals, torch.Tensor):  # [B, K, 2]
            bs, num = proposals.shape[:2]
            batch = torch.arange(bs, device=proposals.device).view(bs, 1, 1).repeat(1, num, 1)
            rois = torch.cat((batch.to(proposals.dtype), proposals), dim=2).view(-1, 3)
            return self._align_tool(feature, rois).unflatten(0, (bs, num)).squeeze(-1)
        rois: List[torch.Tensor] = [
            torch.cat((p.new_full((p.shape[0], 1), i), p), dim=-1) for i, p in enumerate(proposals)
        ]
        return self._align_tool(feature, torch.cat(rois, dim=0)).squeeze(-1)

    def _align_tool(self, feature: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """``rois [N, 3]`` -> ``[N, C, roi_size, 1]`` (torchvision) or ``[N, C, roi_size]`` (align1d)."""
        dtype = feature.dtype
        if self.deterministic:
            feature, rois = feature.half().double(), rois.half().double()
        if self.method == "torchvision":
            from torchvision.ops import roi_align  # imported here: torchvision is slow to import

            boxes = torch.stack(
                (rois[:, 0], torch.zeros_like(rois[:, 0]), rois[:, 1], torch.ones_like(rois[:, 0]), rois[:, 2]), dim=1
            )
            out = roi_align(feature.unsqueeze(3), boxes, output_size=(self.roi_size, 1), aligned=True)
        else:
            out = self.align1d(feature, rois)
        return out.to(dtype) if self.deterministic else out
