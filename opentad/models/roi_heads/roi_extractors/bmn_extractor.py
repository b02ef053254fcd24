"""BMN's boundary-matching layer: features of every (duration, start) proposal of a window.

Upstream samples the map with a dense ``[T, N, D, T]`` mask (``torch.tensordot``,
``N`` = ``num_sample`` points per proposal) and then applies ``conv3d``, a
``(N, 1)`` Conv2d, to the ``[B, C, N, D * T]`` result. Both steps are linear, so
here the ``conv3d`` weight is applied first (``[B, C, T] -> [N, T, B, R]``, R =
``roi_channels``) and the sampling becomes one sparse product: each proposal
point mixes at most ``2 * num_sample_perbin`` steps, so the mask, as a
``[D * T, N * T]`` matrix, has a few nonzeros per row instead of ``N * T``.
The result equals upstream's up to float rounding; the dense intermediate
``[B, C, N, D * T]`` never exists. See ``benchmarks/proposal_map.py``.
"""
from __future__ import annotations

import warnings
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.registry import ROI_HEADS

__all__ = ["BMNExtractor", "bm_sampling_matrix"]


def _sample_points(tscale: int, dscale: int, num_sample: int, num_sample_perbin: int, ratio: float):
    """Float64 sample positions ``[D, T, N * P]`` of every proposal, and the valid ``[D, T]`` mask."""
    d = torch.arange(dscale, dtype=torch.float64)[:, None]
    t = torch.arange(tscale, dtype=torch.float64)[None, :]
    center_len = d + 1.0
    xmin = t - center_len * ratio
    xmax = (t + d) + center_len * ratio
    step = (xmax - xmin) / (num_sample * num_sample_perbin - 1.0)
    k = torch.arange(num_sample * num_sample_perbin, dtype=torch.float64)
    points = xmin[..., None] + step[..., None] * k
    valid = (t + d < tscale).expand(dscale, tscale)
    return points, valid


@torch.no_grad()
def bm_sampling_matrix(
    tscale: int, dscale: int, num_sample: int, num_sample_perbin: int, prop_extend_ratio: float
) -> torch.Tensor:
    """Upstream's sampling mask as a sparse COO matrix ``[D * T, N * T]`` (float32, coalesced).

    Entry ``[d * T + t, n * T + s]`` is upstream's ``sample_mask[s, n, d, t]``:
    proposal ``[t, t + d]`` (valid when ``t + d < T``) is extended by
    ``prop_extend_ratio * (d + 1)`` on both sides, ``N * P`` points are spread
    evenly over it and bin ``n`` averages the linear interpolation of its ``P``
    points. As upstream (``math.modf``), a point ``x`` gives ``1 - frac(x)`` to
    ``trunc(x)`` and ``frac(x)`` to ``ceil(x)``, each kept when inside
    ``[0, T - 1]`` (so a point in ``(-1, 0)`` gives weight 1 to step 0).
    Computed in float64, rounded once to float32 as upstream.

    Args:
        tscale, dscale: ``T``, ``D``.
        num_sample, num_sample_perbin: ``N``, ``P``.
        prop_extend_ratio: the extension of each side, relative to the proposal length.
    """
    points, valid = _sample_points(tscale, dscale, num_sample, num_sample_perbin, prop_extend_ratio)
    down = torch.trunc(points)
    frac = points - down
    up = torch.ceil(points)
    rows = (torch.arange(dscale * tscale).view(dscale, tscale, 1)).expand_as(points)
    bins = torch.arange(num_sample * num_sample_perbin) // num_sample_perbin
    index = torch.stack((down, up), dim=-1).long()  # [D, T, NP, 2]
    weight = torch.stack((1.0 - frac, frac), dim=-1)
    keep = (index >= 0) & (index <= tscale - 1) & valid[..., None, None]
    cols = bins[:, None] * tscale + index
    rows = rows[..., None].expand_as(index)
    matrix = torch.sparse_coo_tensor(
        torch.stack((rows[keep], cols[keep])), weight[keep], (dscale * tscale, num_sample * tscale),
        check_invariants=True,
    ).coalesce()
    values = (1.0 / num_sample_perbin) * matrix.values()
    nonzero = values != 0
    return torch.sparse_coo_tensor(
        matrix.indices()[:, nonzero], values[nonzero].float(), matrix.shape, is_coalesced=True, check_invariants=True
    )


class _SparseRows(torch.autograd.Function):
    """``S @ y`` for a constant CSR matrix ``S`` given with its transpose (backward: ``S^T @ grad``)."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, matrix: torch.Tensor, matrix_t: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(matrix_t)
        return torch.sparse.mm(matrix, y)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (matrix_t,) = ctx.saved_tensors
        return torch.sparse.mm(matrix_t, grad.contiguous()), None, None


def _quiet_csr(build, *args, **kwargs) -> torch.Tensor:
    """A CSR tensor, without PyTorch's one-time "support is in beta state" warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return build(*args, **kwargs)


def _csr_parts(matrix: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    csr = _quiet_csr(matrix.to_sparse_csr)
    return csr.crow_indices(), csr.col_indices(), csr.values()


@ROI_HEADS.register_module()
class BMNExtractor(nn.Module):
    """Boundary-matching layer: ``x [B, C, T] -> [B, out_channels, D, T]``.

    ``reduce_dim`` (Conv1d 3 + ReLU to ``hid_channels``), sampling of each
    proposal at ``num_sample`` points, ``conv3d`` (Conv2d ``(num_sample, 1)``
    to ``roi_channels``) + ReLU, ``conv2d`` (1x1 to ``out_channels``) + ReLU.
    Keys ``reduce_dim.0.*``, ``conv3d.0.*``, ``conv2d.0.*`` as upstream; the
    sampling tables are non-persistent buffers (upstream's mask is no key either).

    Args:
        in_channels, hid_channels, roi_channels, out_channels: widths.
        tscale: window length ``T`` (the input must have it).
        dscale: largest proposal duration ``D``.
        num_sample: points per proposal ``N``.
        num_sample_perbin: interpolated samples averaged per point ``P``.
        prop_extend_ratio: extension of each side of a proposal, relative to its length.
    """

    def __init__(
        self,
        *,
        in_channels: int = 256,
        hid_channels: int = 128,
        roi_channels: int = 512,
        out_channels: int = 128,
        tscale: int = 128,
        dscale: int = 128,
        num_sample: int = 32,
        num_sample_perbin: int = 3,
        prop_extend_ratio: float = 0.5,
    ):
        super().__init__()
        self.tscale, self.dscale = tscale, dscale
        self.num_sample = num_sample
        self.num_sample_perbin = num_sample_perbin
        self.prop_extend_ratio = prop_extend_ratio
        self.reduce_dim = nn.Sequential(nn.Conv1d(in_channels, hid_channels, 3, padding=1), nn.ReLU(inplace=True))
        self.conv3d = nn.Sequential(
            nn.Conv2d(hid_channels, roi_channels, kernel_size=(num_sample, 1), stride=(num_sample, 1)),
            nn.ReLU(inplace=True),
        )
        self.conv2d = nn.Sequential(nn.Conv2d(roi_channels, out_channels, 1), nn.ReLU(inplace=True))
        matrix = bm_sampling_matrix(tscale, dscale, num_sample, num_sample_perbin, prop_extend_ratio)
        for name, part in zip(("crow", "col", "val"), _csr_parts(matrix)):
            self.register_buffer(f"sample_{name}", part, persistent=False)
        for name, part in zip(("crow", "col", "val"), _csr_parts(matrix.t().coalesce())):
            self.register_buffer(f"sample_t_{name}", part, persistent=False)

    def sampling_matrix(self, transpose: bool = False) -> torch.Tensor:
        """The CSR matrix ``[D * T, N * T]`` (or its transpose) of :func:`bm_sampling_matrix`."""
        prefix = "sample_t" if transpose else "sample"
        crow, col, val = (getattr(self, f"{prefix}_{name}") for name in ("crow", "col", "val"))
        shape = (self.num_sample * self.tscale, self.dscale * self.tscale)
        return _quiet_csr(
            torch.sparse_csr_tensor, crow, col, val, shape if transpose else shape[::-1], check_invariants=False
        )

    def boundary_matching(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(conv3d(sample(x)))``: ``[B, hid_channels, T] -> [B, roi_channels, D, T]``.

        Raises:
            ValueError: ``T`` is not ``tscale``.
        """
        batch, _, length = x.shape
        if length != self.tscale:
            raise ValueError(f"BMNExtractor: input length {length} != tscale {self.tscale}")
        conv = self.conv3d[0]
        weight = conv.weight.squeeze(-1)  # [R, H, N]
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        with torch.autocast(x.device.type, enabled=False):  # the sparse product takes float32/64 only
            projected = torch.einsum("bht,rhn->ntbr", x.to(dtype), weight.to(dtype))  # [N, T, B, R]
            matrix, matrix_t = (self.sampling_matrix(t).to(dtype) for t in (False, True))
            sampled = _SparseRows.apply(projected.reshape(-1, batch * weight.shape[0]), matrix, matrix_t)
        sampled = sampled.view(self.dscale, self.tscale, batch, -1).permute(2, 3, 0, 1)  # [B, R, D, T]
        return F.relu(sampled + conv.bias.to(dtype)[:, None, None]).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, in_channels, T] -> [B, out_channels, D, T]``."""
        return self.conv2d(self.boundary_matching(self.reduce_dim(x)))

    def extra_repr(self) -> str:
        return (
            f"tscale={self.tscale}, dscale={self.dscale}, num_sample={self.num_sample}, "
            f"num_sample_perbin={self.num_sample_perbin}, prop_extend_ratio={self.prop_extend_ratio}"
        )
