"""1D RoI align: compiled op (``align1d_cpu`` / ``align1d_cuda``) or pure-PyTorch fallback."""

from .align import Align1DLayer, align1d
from .align_torch import align1d_backward_torch, align1d_forward_torch

__all__ = ["align1d", "Align1DLayer", "align1d_forward_torch", "align1d_backward_torch"]
