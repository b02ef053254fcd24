"""Mamba mixers of VideoMambaSuite and CausalTAD, on :func:`selective_scan`.

Upstream OpenTAD imports these from video-mamba-suite's modified ``mamba_ssm``
(``mamba_ssm.modules.mamba_new.Mamba``, the "DBM" mixer;
``mamba_ssm.modules.mamba_simple.Mamba`` with ``bimamba_type="v2"``, "ViM")
and defines ``MixtureCausalBlock`` on ``mamba_inner_fn_no_out_proj``, a fused
function of that fork that stock ``mamba-ssm`` does not ship. This module
computes the same: :func:`mamba_inner` is that function (causal depthwise conv,
SiLU, input-dependent ``delta``/``B``/``C``, the scan gated by ``z``), built on
the selective scan, which runs ``mamba_ssm``'s CUDA kernel when installed.

Parameter names are upstream's (``in_proj``, ``conv1d``, ``x_proj``,
``dt_proj``, ``A_log``, ``D``, ``out_proj``; ``conv1d_b``, ``x_proj_b``,
``dt_proj_b``, ``A_b_log``, ``D_b`` for ViM's backward scan; ``qkv``), so
upstream checkpoints load unchanged. Inputs and outputs are ``[B, L, C]``.
"""
from __future__ import annotations

import math
from typing import Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.bricks.selective_scan import selective_scan

__all__ = ["mamba_inner", "SelectiveSSM", "DBM", "ViM", "MixtureCausalBlock"]


def mamba_inner(
    xz: torch.Tensor,
    conv1d: nn.Conv1d,
    x_proj: nn.Linear,
    dt_proj: nn.Linear,
    A_log: torch.Tensor,
    D: torch.Tensor,
) -> torch.Tensor:
    """Upstream's ``mamba_inner_fn_no_out_proj`` with input-dependent ``B`` and ``C``.

    ``x, z = xz``; ``x = silu(causal_depthwise_conv(x))``; ``x_proj(x)`` gives
    ``(dt, B, C)`` of sizes ``(dt_rank, N, N)``; ``delta = dt_proj.weight @ dt``
    (its bias enters the scan as ``delta_bias`` with softplus); the result is
    ``selective_scan(x, delta, -exp(A_log), B, C, D, z)``.

    Args:
        xz: ``[B, 2 d_inner, L]``, ``x`` then ``z`` along channels.
        conv1d: depthwise ``nn.Conv1d(d_inner, d_inner, k, groups=d_inner, padding=k - 1)``.
        x_proj: ``nn.Linear(d_inner, dt_rank + 2 N, bias=False)``.
        dt_proj: ``nn.Linear(dt_rank, d_inner)``.
        A_log: ``[d_inner, N]``.
        D: ``[d_inner]``.

    Returns:
        ``[B, d_inner, L]``.
    """
    length = xz.shape[-1]
    x, z = xz.chunk(2, dim=1)
    x = F.silu(conv1d(x)[..., :length])  # padding k - 1 on both sides, keep the first L: causal
    n_state = A_log.shape[1]
    dt, B, C = x_proj(x.transpose(1, 2)).split([dt_proj.in_features, n_state, n_state], dim=-1)
    delta = F.linear(dt, dt_proj.weight).transpose(1, 2)  # [B, d_inner, L]
    return selective_scan(
        x,
        delta,
        -torch.exp(_at_least_float32(A_log)),
        B.transpose(1, 2)[:, None],  # [B, 1, N, L]: one group
        C.transpose(1, 2)[:, None],
        _at_least_float32(D),
        z=z,
        delta_bias=_at_least_float32(dt_proj.bias),
        delta_softplus=True,
    )


def _at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """Upstream's ``.float()`` on ``A_log``, ``D`` and ``delta_bias``, keeping float64 as it is."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


class SelectiveSSM(nn.Module):
    """Holds the scan parameters of one or more directions and applies :func:`mamba_inner`.

    :meth:`add_scan` creates ``conv1d{s}``, ``x_proj{s}``, ``dt_proj{s}``,
    ``A_log`` / ``A{s}_log`` and ``D{s}`` for a name suffix ``s`` ("" or "_b"),
    initialised as Mamba does: ``A = 1..N`` per channel (S4D-real), ``D = 1``,
    ``dt_proj.weight ~ U(+-dt_scale / sqrt(dt_rank))`` and ``dt_proj.bias``
    the inverse softplus of ``dt`` log-uniform in ``[dt_min, dt_max]``
    (floored at ``dt_init_floor``); that bias is marked ``_no_reinit`` so that
    a projection's bias zeroing skips it, as upstream.

    Args:
        d_model: input/output channels ``C``.
        d_state: state size ``N``.
        d_conv: causal conv kernel size.
        expand: ``d_inner = expand * d_model``.
        dt_rank: rank of ``delta``'s projection; "auto" is ``ceil(d_model / 16)``.
        dt_min, dt_max, dt_init_floor, dt_scale: the ``delta`` initialisation.
        dt_init: "random" (uniform weight) or "constant".
        conv_bias: bias of the depthwise conv.

    Raises:
        ValueError: unknown ``dt_init`` or ``dt_rank``.
    """

    def __init__(
        self,
        d_model: int,
        *,
        d_state: int = 16,
        d_conv: int = 4,
        expand: Union[int, float] = 2,
        dt_rank: Union[int, str] = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
    ):
        super().__init__()
        if dt_init not in ("random", "constant"):
            raise ValueError(f"dt_init must be 'random' or 'constant', got {dt_init!r}")
        if dt_rank != "auto" and not isinstance(dt_rank, int):
            raise ValueError(f"dt_rank must be 'auto' or an int, got {dt_rank!r}")
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
        self._dt_init = dict(dt_min=dt_min, dt_max=dt_max, dt_init=dt_init, dt_scale=dt_scale, floor=dt_init_floor)
        self._conv_bias = conv_bias

    def add_scan(self, suffix: str = "") -> None:
        """Create the parameters of one scan direction under the names with ``suffix``."""
        d_inner, cfg = self.d_inner, self._dt_init
        conv = nn.Conv1d(d_inner, d_inner, self.d_conv, groups=d_inner, padding=self.d_conv - 1, bias=self._conv_bias)
        dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)
        std = self.dt_rank**-0.5 * cfg["dt_scale"]
        if cfg["dt_init"] == "constant":
            nn.init.constant_(dt_proj.weight, std)
        else:
            nn.init.uniform_(dt_proj.weight, -std, std)
        log_min, log_max = math.log(cfg["dt_min"]), math.log(cfg["dt_max"])
        dt = torch.exp(torch.rand(d_inner) * (log_max - log_min) + log_min).clamp(min=cfg["floor"])
        with torch.no_grad():
            dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus(bias) == dt
        dt_proj.bias._no_reinit = True
        setattr(self, f"conv1d{suffix}", conv)
        setattr(self, f"x_proj{suffix}", nn.Linear(d_inner, self.dt_rank + 2 * self.d_state, bias=False))
        setattr(self, f"dt_proj{suffix}", dt_proj)
        a = torch.arange(1, self.d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        setattr(self, f"A{suffix}_log", nn.Parameter(torch.log(a)))
        setattr(self, f"D{suffix}", nn.Parameter(torch.ones(d_inner)))

    def scan(self, xz: torch.Tensor, suffix: str = "") -> torch.Tensor:
        """:func:`mamba_inner` with the parameters of direction ``suffix``: ``[B, 2 d_inner, L] -> [B, d_inner, L]``."""
        return mamba_inner(
            xz,
            getattr(self, f"conv1d{suffix}"),
            getattr(self, f"x_proj{suffix}"),
            getattr(self, f"dt_proj{suffix}"),
            getattr(self, f"A{suffix}_log"),
            getattr(self, f"D{suffix}"),
        )

    def project_in(self, hidden: torch.Tensor) -> torch.Tensor:
        """``in_proj`` as upstream applies it: ``[B, L, C] -> [B, C', L]``."""
        return F.linear(hidden, self.in_proj.weight, self.in_proj.bias).transpose(1, 2)


class DBM(SelectiveSSM):
    """Video-mamba-suite's "DBM" mixer (``mamba_new.Mamba``): one scan, shared by both directions.

    ``in_proj`` gives ``4 d_inner`` channels: ``(x, z)`` of the forward
    direction, then of the backward direction, which is reversed in time. Both
    run through the same scan parameters as one batch of ``2B``; the backward
    output is reversed back, concatenated on channels (forward first) and
    projected by ``out_proj`` (``2 d_inner -> C``, no bias).

    Args:
        d_model, d_state, d_conv, expand, ...: as :class:`SelectiveSSM`
            (``MambaProj`` uses ``expand=1``).
        bias: bias of ``in_proj`` and ``out_proj``.
    """

    def __init__(self, d_model: int, *, bias: bool = False, **kwargs):
        super().__init__(d_model, **kwargs)
        self.in_proj = nn.Linear(d_model, self.d_inner * 4, bias=bias)
        self.add_scan()
        self.out_proj = nn.Linear(self.d_inner * 2, d_model, bias=bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, L, C] -> [B, L, C]``."""
        fwd, bwd = self.project_in(hidden).chunk(2, dim=1)
        out = self.scan(torch.cat([fwd, bwd.flip(-1)], dim=0))
        out_f, out_b = out.chunk(2, dim=0)
        out = torch.cat([out_f, out_b.flip(-1)], dim=1)
        return F.linear(out.transpose(1, 2), self.out_proj.weight, self.out_proj.bias)


class ViM(SelectiveSSM):
    """Vision Mamba's bidirectional mixer (``mamba_simple.Mamba``, ``bimamba_type="v2"``).

    ``in_proj`` gives ``(x, z)`` (``2 d_inner``); a forward scan and a scan of
    the time-reversed ``(x, z)`` with its own parameters (``*_b``) are added
    (the backward one reversed back), optionally halved (``if_devide_out``),
    and projected by ``out_proj`` (``d_inner -> C``).

    Args:
        d_model, d_state, d_conv, expand, ...: as :class:`SelectiveSSM`.
        bias: bias of ``in_proj`` and ``out_proj``.
        if_devide_out: divide the sum of both directions by 2 (upstream's spelling).
    """

    def __init__(self, d_model: int, *, bias: bool = False, if_devide_out: bool = False, **kwargs):
        super().__init__(d_model, **kwargs)
        self.if_devide_out = if_devide_out
        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=bias)
        self.add_scan()
        self.add_scan("_b")
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, L, C] -> [B, L, C]``."""
        xz = self.project_in(hidden)
        out = self.scan(xz) + self.scan(xz.flip(-1), "_b").flip(-1)
        if self.if_devide_out:
            out = out / 2
        return F.linear(out.transpose(1, 2), self.out_proj.weight, self.out_proj.bias)


class MixtureCausalBlock(SelectiveSSM):
    """CausalTAD's hybrid mixer: a causal Mamba scan and causal attention, both directions.

    ``in_proj`` gives ``8 d_inner`` channels: the forward half and the
    time-reversed backward half are stacked as a batch of ``2B``, each split
    into ``(x, z)`` for the scan and ``(x_t, z_t)`` for attention. The scan is
    :func:`mamba_inner`. Attention: ``qkv`` (depthwise conv, kernel 3, ``d_inner
    -> 3 d_inner``) is read as ``[L, 3, num_head, d_inner / num_head]``, causal
    softmax attention with scale ``1 / sqrt(head_dim)``, gated by ``silu(z_t)``.
    Scan and attention outputs are concatenated, the backward half reversed
    back and put after the forward half on channels, then ``out_proj``
    (``4 d_inner -> C``). No mask enters: padded steps take part, as upstream.

    Args:
        d_model, d_state, d_conv, expand, ...: as :class:`SelectiveSSM`.
        bias: bias of ``in_proj`` and ``out_proj``.
        num_head: attention heads (divides ``d_inner``).

    Raises:
        ValueError: ``d_inner`` not divisible by ``num_head``.
    """

    def __init__(self, d_model: int, *, bias: bool = False, num_head: int = 4, **kwargs):
        super().__init__(d_model, **kwargs)
        if self.d_inner % num_head:
            raise ValueError(f"MixtureCausalBlock: d_inner={self.d_inner} not divisible by num_head={num_head}")
        self.num_heads = num_head
        self.in_proj = nn.Linear(d_model, self.d_inner * 8, bias=bias)
        self.add_scan()
        self.qkv = nn.Conv1d(self.d_inner, self.d_inner * 3, kernel_size=3, padding=1, groups=self.d_inner)
        self.out_proj = nn.Linear(self.d_inner * 4, d_model, bias=bias)

    def attend(self, x_t: torch.Tensor) -> torch.Tensor:
        """Causal multi-head attention of ``x_t [B, d_inner, L]`` -> ``[B, d_inner, L]``."""
        batch, _, length = x_t.shape
        qkv = self.qkv(x_t).transpose(1, 2).reshape(batch, length, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, L, head_dim]
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return out.transpose(1, 2).reshape(batch, length, -1).transpose(1, 2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, L, C] -> [B, L, C]``."""
        fwd, bwd = self.project_in(hidden).chunk(2, dim=1)
        xz, xz_t = torch.cat([fwd, bwd.flip(-1)], dim=0).chunk(2, dim=1)
        out = self.scan(xz)
        x_t, z_t = xz_t.chunk(2, dim=1)
        out = torch.cat([out, self.attend(x_t) * F.silu(z_t)], dim=1)
        out_f, out_b = out.chunk(2, dim=0)
        out = torch.cat([out_f, out_b.flip(-1)], dim=1)
        return F.linear(out.transpose(1, 2), self.out_proj.weight, self.out_proj.bias)
