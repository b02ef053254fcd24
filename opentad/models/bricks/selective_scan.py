"""Mamba's selective scan (S6) with a pure-PyTorch fallback that runs anywhere.

The scan maps inputs ``u [B, D, L]`` through a diagonal linear recurrence per
channel ``d`` and state ``n``::

    delta   = softplus(delta + delta_bias)          (each step if asked)
    h_t     = exp(delta_t A) * h_{t-1} + delta_t B_t u_t      h_{-1} = 0
    y_t     = sum_n C_t[n] h_t[n] + D u_t
    out_t   = y_t * silu(z_t)                        (when z is given)

:func:`selective_scan` calls ``mamba_ssm``'s CUDA kernel
(``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``) when that
package imports and the tensors are on a CUDA device, and
:func:`selective_scan_chunked` otherwise. Both compute in float32 (float64
inputs stay float64 in the fallback) and return ``u``'s dtype.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

__all__ = ["selective_scan", "selective_scan_chunked", "cuda_selective_scan"]

logger = logging.getLogger(__name__)

#: above this many elements in one [B, D, L, N] tensor, training recomputes each chunk in backward
RECOMPUTE_NUMEL = 1 << 26


@functools.lru_cache(maxsize=1)
def cuda_selective_scan() -> Optional[Callable[..., torch.Tensor]]:
    """``mamba_ssm``'s ``selective_scan_fn`` if the package imports, else None (looked up once)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError:  # also raised when mamba_ssm's compiled extension is missing
        logger.info("mamba_ssm is not installed: the selective scan uses the PyTorch fallback")
        return None
    return selective_scan_fn


def _check_shapes(u, delta, A, B, C, D, z, delta_bias) -> int:
    """Validate the shapes; returns the number of groups ``G`` of ``B``/``C``."""
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"selective_scan: u and delta must be [B, D, L] alike, got {tuple(u.shape)}, {tuple(delta.shape)}")
    batch, dim, length = u.shape
    if A.is_complex() or A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"selective_scan: A must be a real [D={dim}, N] tensor, got {tuple(A.shape)} {A.dtype}")
    groups = set()
    for name, t in (("B", B), ("C", C)):
        if t.dim() == 3:
            t = t[:, None]
        if t.dim() != 4 or t.shape[0] != batch or t.shape[2:] != (A.shape[1], length) or dim % t.shape[1]:
            raise ValueError(
                f"selective_scan: {name} must be [B, N, L] or [B, G, N, L] with G dividing D "
                f"(B={batch}, D={dim}, N={A.shape[1]}, L={length}), got {tuple(t.shape)}"
            )
        groups.add(t.shape[1])
    if len(groups) != 1:
        raise ValueError(f"selective_scan: B and C must have the same number of groups, got {sorted(groups)}")
    for name, t, shape in (("D", D, (dim,)), ("delta_bias", delta_bias, (dim,)), ("z", z, tuple(u.shape))):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"selective_scan: {name} must have shape {shape}, got {tuple(t.shape)}")
    return groups.pop()


def _chunk_states(decay: torch.Tensor, drive: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """States ``h_t = decay_t h_{t-1} + drive_t`` of one chunk: ``[B, G, H, K, N]`` from ``h [B, G, H, N]``."""
    states: List[torch.Tensor] = []
    for drive_k, decay_k in zip(drive.unbind(3), decay.unbind(3)):
        h = torch.addcmul(drive_k, decay_k, h)
        states.append(h)
    return torch.stack(states, dim=3)


class _ScanChunk(torch.autograd.Function):
    """One chunk of ``K`` steps, grouped layout, with a hand-written backward (a reverse scan, no graph per step).

    Forward inputs: ``u, delta [B, G, H, K]`` (``delta`` biased and softplus'ed),
    ``A [G, H, N]``, ``B, C [B, G, N, K]``, the entering state ``h [B, G, H, N]``.
    Outputs: ``y [B, G, H, K]`` (``sum_n C h``; no ``D``, no gate) and the last state ``[B, G, H, N]``.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, h):
        decay = torch.exp(delta[..., None] * A[None, :, :, None, :])  # [B, G, H, K, N]
        drive = (delta * u)[..., None] * B.transpose(2, 3)[:, :, None]
        states = _chunk_states(decay, drive, h)
        ctx.save_for_backward(u, delta, A, B, C, h, decay, states)
        return (states * C.transpose(2, 3)[:, :, None]).sum(-1), states[..., -1, :]

    @staticmethod
    def backward(ctx, grad_y, grad_h):
        u, delta, A, B, C, h, decay, states = ctx.saved_tensors
        # adjoint of the states: lam_t = dL/dh_t, lam_t = C_t grad_y_t + decay_{t+1} lam_{t+1}
        direct = grad_y[..., None] * C.transpose(2, 3)[:, :, None]  # [B, G, H, K, N]
        lams: List[torch.Tensor] = []
        lam = grad_h if grad_h is not None else torch.zeros_like(h)
        next_decay = torch.ones_like(h)
        for direct_k, decay_k in zip(reversed(direct.unbind(3)), reversed(decay.unbind(3))):
            lam = torch.addcmul(direct_k, next_decay, lam)
            lams.append(lam)
            next_decay = decay_k
        lam = torch.stack(lams[::-1], dim=3)
        previous = torch.cat([h[..., None, :], states[..., :-1, :]], dim=3)
        grad_exponent = lam * previous * decay  # dL/d(delta A) per step and state
        # (elementwise products and sums: einsum's permuted batched matmuls are slower here on a CPU)
        grad_du = (lam * B.transpose(2, 3)[:, :, None]).sum(-1)  # dL/d(delta u)
        grad_delta = (grad_exponent * A[None, :, :, None, :]).sum(-1) + grad_du * u
        grad_A = (grad_exponent * delta[..., None]).sum((0, 3))
        grad_B = (lam * (delta * u)[..., None]).sum(2).transpose(2, 3)
        grad_C = (grad_y[..., None] * states).sum(2).transpose(2, 3)
        return grad_du * delta, grad_delta, grad_A, grad_B, grad_C, next_decay * lam[..., 0, :]


def _scan_chunk(u, delta, A, B, C, h) -> Tuple[torch.Tensor, torch.Tensor]:
    """:class:`_ScanChunk` (a function, so that activation checkpointing can wrap it)."""
    return _ScanChunk.apply(u, delta, A, B, C, h)


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    *,
    chunk_size: int = 64,
    recompute: Optional[bool] = None,
    use_kernel: bool = True,
) -> torch.Tensor:
    """The selective scan: ``mamba_ssm``'s CUDA kernel on CUDA tensors when installed (and ``use_kernel``),
    else plain PyTorch, chunked over ``L``.

    Why this form. The recurrence is evaluated step by step with the
    multiplicative decays ``exp(delta_t A)``, as the CUDA kernel and
    ``selective_scan_ref`` do, vectorised over batch, channels and states.
    A log-space prefix sum (``exp(cum_t - cum_s)`` via ``exp(-cum_s)``)
    overflows float32 once ``sum |delta A|`` passes ~88, and the stable
    chunked matrix form (a ``[K, K]`` decay matrix per channel and state)
    costs ``K`` times the flops, which on a CPU outweighs the Python loop it
    saves. Memory: the decays and drives of one chunk (``[B, D, K, N]``) are
    formed at a time; under autograd with ``recompute`` each chunk is run
    again in backward (activation checkpointing), so what is kept is the
    inputs plus one ``[B, D, N]`` state per chunk instead of ``[B, D, L, N]``.

    Args:
        u: ``[B, D, L]``.
        delta: ``[B, D, L]`` step sizes (before ``delta_bias`` / softplus).
        A: ``[D, N]`` real (negative for a stable scan).
        B, C: ``[B, N, L]`` or ``[B, G, N, L]`` (channel ``d`` uses group ``d // (D / G)``).
        D: ``[D]`` skip weights or None.
        z: ``[B, D, L]`` gate or None.
        delta_bias: ``[D]`` added to ``delta`` or None.
        delta_softplus: apply softplus to ``delta`` (after the bias).
        chunk_size: steps per chunk ``K``.
        recompute: checkpoint each chunk in backward; None: only when autograd is
            on and one ``[B, D, L, N]`` tensor would exceed ``RECOMPUTE_NUMEL`` elements.
        use_kernel: False: the PyTorch scan on any device (``chunk_size`` and ``recompute``
            apply to it only).

    Returns:
        ``[B, D, L]`` in ``u``'s dtype (computed in float32, or float64 for float64 inputs in PyTorch).

    Raises:
        ValueError: inconsistent shapes, complex ``A`` or ``chunk_size < 1``.
    """
    groups = _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    kernel = cuda_selective_scan() if use_kernel and u.is_cuda else None
    if kernel is not None:
        return kernel(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    if chunk_size < 1:
        raise ValueError(f"selective_scan: chunk_size must be >= 1, got {chunk_size}")
    work = torch.float64 if u.dtype == torch.float64 else torch.float32
    batch, dim, length = u.shape
    n_state = A.shape[1]
    per_group = dim // groups
    delta = delta.to(work)
    if delta_bias is not None:
        delta = delta + delta_bias.to(work)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    u_g = u.to(work).view(batch, groups, per_group, length)
    delta_g = delta.view(batch, groups, per_group, length)
    A_g = A.to(work).view(groups, per_group, n_state)
    B_g = B.to(work).view(batch, groups, n_state, length)
    C_g = C.to(work).view(batch, groups, n_state, length)

    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C))
    if recompute is None:
        recompute = grad and batch * dim * length * n_state > RECOMPUTE_NUMEL
    h = u_g.new_zeros(batch, groups, per_group, n_state)
    outs = []
    for start in range(0, length, chunk_size):
        part = slice(start, min(start + chunk_size, length))
        args = (u_g[..., part], delta_g[..., part], A_g, B_g[..., part], C_g[..., part], h)
        if recompute and grad:
            y, h = checkpoint(_scan_chunk, *args, use_reentrant=False)
        else:
            y, h = _scan_chunk(*args)
        outs.append(y)
    y = torch.cat(outs, dim=-1).view(batch, dim, length)
    if D is not None:
        y = y + u.to(work) * D.to(work)[:, None]
    if z is not None:
        y = y * F.silu(z.to(work))
    return y.to(u.dtype)


def selective_scan_chunked(*args: Any, **kwargs: Any) -> torch.Tensor:
    """:func:`selective_scan` in plain PyTorch on any device (``use_kernel=False``), same arguments."""
    return selective_scan(*args, use_kernel=False, **kwargs)
