"""TSI (Liu et al., ACCV 2020) as a :class:`BMN`: local and global boundaries, scale-invariant loss."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn as nn

from opentad.models.detectors.bmn import BMN
from opentad.registry import DETECTORS

__all__ = ["TSI"]


@DETECTORS.register_module()
class TSI(BMN):
    """BMN with TSI's boundary head (``LocalGlobalTemporalEvaluationHead``) and ``TSIHead``.

    A boundary's probability is the geometric mean of its local and global
    ones, ``sqrt(sigmoid(local) * sigmoid(global))``; the rest of the
    post-processing is BMN's. Conv, transposed-conv and 3D-conv weights are
    Xavier-uniform with zero biases (upstream's ``reset_params``).

    Args:
        projection, rpn_head, roi_head, neck, backbone: as :class:`BMN`.
    """

    xavier_types: Tuple[type, ...] = (nn.Conv1d, nn.ConvTranspose1d, nn.Conv2d, nn.Conv3d)

    def boundary_probabilities(self, tem: Sequence[torch.Tensor]) -> torch.Tensor:
        """``[B, 2, T]`` start/end probabilities of the logits ``(local_s, local_e, global_s, global_e)``, each ``[B, T]``."""
        local_s, local_e, global_s, global_e = tem
        starts = torch.sqrt(local_s.sigmoid() * global_s.sigmoid())
        ends = torch.sqrt(local_e.sigmoid() * global_e.sigmoid())
        return torch.stack((starts, ends), dim=1)
