"""Boundary max pooling: compiled op (``boundary_pooling_cpu`` / ``_cuda``) or pure-PyTorch fallback."""

from .boundary_pooling_op import BoundaryMaxPooling, BoundaryMaxPoolingFunction, boundary_max_pooling
from .boundary_pooling_torch import boundary_pooling_backward_torch, boundary_pooling_forward_torch

__all__ = [
    "boundary_max_pooling",
    "BoundaryMaxPooling",
    "BoundaryMaxPoolingFunction",
    "boundary_pooling_forward_torch",
    "boundary_pooling_backward_torch",
]
