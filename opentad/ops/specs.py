"""The optional compiled ops: names, sources and where their fallbacks live.

Plain data with no imports beyond the standard library, so that ``setup.py``
can read it (with ``runpy``) before torch or opentad are importable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

__all__ = ["OpSpec", "OP_SPECS", "BUILD_HINT"]

BUILD_HINT = (
    "Build the native ops with `OPENTAD_EXT=all pip install -e .` (needs a C++ compiler; "
    "the CUDA ops also need nvcc and a CUDA build of PyTorch), then check with "
    "`python -m opentad.ops`. See docs/install.md, section 'Native ops'."
)


@dataclass(frozen=True)
class OpSpec:
    """One compiled extension module.

    Attributes:
        name: short name used in messages, ``python -m opentad.ops`` and by the
            wrappers (e.g. ``"nms_1d_cpu"``).
        module: importable module name of the built extension.
        device: ``"cpu"`` (C++ only) or ``"cuda"`` (needs nvcc).
        sources: source files relative to the repository root.
        summary: what it computes.
        fallback: module holding the pure-PyTorch version used when it is missing.
    """

    name: str
    module: str
    device: str
    sources: Tuple[str, ...]
    summary: str
    fallback: str


OP_SPECS: Tuple[OpSpec, ...] = (
    OpSpec(
        name="nms_1d_cpu",
        module="opentad.ops._nms_1d_cpu",
        device="cpu",
        sources=("csrc/nms_1d/nms_1d_cpu.cpp", "csrc/nms_1d/bind.cpp"),
        summary="1D NMS and soft-NMS",
        fallback="opentad.models.utils.post_processing.nms",
    ),
    OpSpec(
        name="align1d_cpu",
        module="opentad.ops._align1d_cpu",
        device="cpu",
        sources=("csrc/align1d/align1d_cpu.cpp", "csrc/align1d/bind_cpu.cpp"),
        summary="1D RoI align, forward and backward",
        fallback="opentad.models.roi_heads.roi_extractors.align1d",
    ),
    OpSpec(
        name="align1d_cuda",
        module="opentad.ops._align1d_cuda",
        device="cuda",
        sources=("csrc/align1d/align1d_cuda.cu", "csrc/align1d/bind_cuda.cpp"),
        summary="1D RoI align, forward and backward",
        fallback="opentad.models.roi_heads.roi_extractors.align1d",
    ),
    OpSpec(
        name="boundary_pooling_cpu",
        module="opentad.ops._boundary_pooling_cpu",
        device="cpu",
        sources=("csrc/boundary_pooling/boundary_pooling_cpu.cpp", "csrc/boundary_pooling/bind_cpu.cpp"),
        summary="boundary max pooling, forward and backward",
        fallback="opentad.models.roi_heads.roi_extractors.boundary_pooling",
    ),
    OpSpec(
        name="boundary_pooling_cuda",
        module="opentad.ops._boundary_pooling_cuda",
        device="cuda",
        sources=("csrc/boundary_pooling/boundary_pooling_cuda.cu", "csrc/boundary_pooling/bind_cuda.cpp"),
        summary="boundary max pooling, forward and backward",
        fallback="opentad.models.roi_heads.roi_extractors.boundary_pooling",
    ),
)
