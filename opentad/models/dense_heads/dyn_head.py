"""DyFADet's dynamic head ``TDynHead``: the anchor-free head with cross-scale dynamic towers."""
from __future__ import annotations

import logging
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.bricks.dynamic_conv import DTFAM, DynamicScaleFusion, GateOptions
from opentad.models.dense_heads.actionformer_head import ActionFormerHead
from opentad.registry import HEADS, bind

__all__ = ["TDynHead"]

logger = logging.getLogger(__name__)


@HEADS.register_module()
class TDynHead(ActionFormerHead):
    """:class:`ActionFormerHead` whose towers work across pyramid levels.

    Each of the ``num_convs`` layers of ``cls_convs`` / ``reg_convs`` is a
    :class:`DynamicScaleFusion` (every level mixed with its two neighbours by dynamic convs)
    whose ``depth_module`` is a :class:`DTFAM` with a :class:`DynamicConv1d` weight generator
    (``conv_type="others"``) of kernel ``head_kernel_size``; it takes the whole pyramid and
    returns it. Targets, losses, predictions and post-processing are the anchor-free head's.

    Args:
        head_kernel_size: odd kernel of the dynamic convs.
        dyn_head_cfg: :class:`GateOptions`: ``type`` (activation of the depth modules' gates,
            e.g. ``"GeReTanH"``), ``tau``, ``init_gate`` (unused, as upstream), ``dyn_type``
            (gate sharing of the cross-scale convs).
        **kwargs: the keys of :class:`AnchorFreeHead` (``num_classes``, ``in_channels``,
            ``feat_channels``, ``num_convs``, ``prior_generator``, losses, ...).

    Raises:
        ConfigError: an unknown or ill-typed ``dyn_head_cfg`` key.
        ValueError: unknown gate type or ``dyn_type``; even ``head_kernel_size``.
    """

    def __init__(self, *, head_kernel_size: int = 3, dyn_head_cfg: Optional[Mapping[str, Any]] = None, **kwargs: Any):
        # read by _tower(), which the base constructor calls
        self.head_kernel_size = head_kernel_size
        self.dyn_head_cfg = bind(GateOptions, dyn_head_cfg, path="TDynHead.dyn_head_cfg")
        super().__init__(**kwargs)

    def _tower(self, kernel_size: Optional[int] = None) -> nn.ModuleList:
        """``num_convs`` :class:`DynamicScaleFusion` layers (kernel ``head_kernel_size`` unless given)."""
        kernel_size = self.head_kernel_size if kernel_size is None else kernel_size
        layers = []
        for i in range(self.num_convs):
            dim = self.in_channels if i == 0 else self.feat_channels
            depth = DTFAM(
                dim, self.feat_channels, kernel_size=kernel_size, conv_type="others", gate=self.dyn_head_cfg
            )
            layers.append(
                DynamicScaleFusion(
                    dim, kernel_size=kernel_size, num_adjacent_scales=2, depth_module=depth,
                    gate=self.dyn_head_cfg,
                )
            )
        return nn.ModuleList(layers)

    def forward_levels(
        self, feat_list: Sequence[torch.Tensor], mask_list: Sequence[torch.Tensor]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Raw predictions per level: logits ``[B, C, T_l]`` and distances ``[B, 2, T_l]`` (>= 0).

        Args:
            feat_list: the pyramid ``[B, C_in, T_l]``.
            mask_list: its masks ``[B, T_l]``.
        """
        cls_feats, reg_feats = list(feat_list), list(feat_list)
        for cls_conv, reg_conv in zip(self.cls_convs, self.reg_convs):
            cls_feats = cls_conv(cls_feats, mask_list)
            reg_feats = reg_conv(reg_feats, mask_list)
        cls_pred, reg_pred = [], []
        for level, (cls_feat, reg_feat) in enumerate(zip(cls_feats, reg_feats)):
            cls_pred.append(self.cls_head(cls_feat))
            reg_pred.append(F.relu(self.scale[level](self.reg_head(reg_feat))))
        return cls_pred, reg_pred
