"""1D NMS and soft-NMS (compiled op when built, pure PyTorch otherwise)."""

from .nms import batched_nms, nms_1d, seg_voting, soft_nms_1d
from .nms_torch import SOFT_NMS_METHODS, nms_1d_torch, soft_nms_1d_torch

__all__ = [
    "batched_nms",
    "nms_1d",
    "soft_nms_1d",
    "seg_voting",
    "nms_1d_torch",
    "soft_nms_1d_torch",
    "SOFT_NMS_METHODS",
]
