"""ActionFormer's masked transformer pieces.

Module and parameter names follow upstream OpenTAD (``query_conv``,
``query_norm``, ``key``, ``proj``, ``ln1``, ``mlp.0``, ``drop_path_attn.scale``,
...) so that upstream checkpoints load without renaming.

Shapes: features ``[B, C, T]``, masks ``[B, T]`` bool (True on valid steps).
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from opentad.models.bricks.conv import ConvModule
from opentad.models.bricks.misc import AffineDropPath, ChannelLayerNorm
from opentad.models.utils.misc import apply_mask

__all__ = ["MaskedMHCA", "LocalMaskedMHCA", "TransformerBlock"]


def _check_stride(stride: int, name: str) -> None:
    if stride != 1 and stride % 2 != 0:
        raise ValueError(f"{name} must be 1 or even, got {stride}")


class MaskedMHCA(nn.Module):
    """Multi-head self-attention whose q/k/v come from depthwise convolutions.

    The depthwise convs (kernel 3, or ``stride + 1`` when strided) encode local
    order and downsample; each is followed by a LayerNorm and a 1x1 projection.
    Padded keys never receive attention and padded outputs are zero.

    Args:
        n_embd: channels ``C`` (a multiple of ``n_head``).
        n_head: number of heads.
        n_qx_stride: temporal stride of the queries (1 or even).
        n_kv_stride: temporal stride of keys and values (1 or even).
        attn_pdrop: dropout on the attention weights.
        proj_pdrop: dropout after the output projection.

    Raises:
        ValueError: ``n_embd`` not divisible by ``n_head``, or a bad stride.
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        *,
        n_qx_stride: int = 1,
        n_kv_stride: int = 1,
        attn_pdrop: float = 0.0,
        proj_pdrop: float = 0.0,
    ):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        _check_stride(n_qx_stride, "n_qx_stride")
        _check_stride(n_kv_stride, "n_kv_stride")
        self.n_embd = n_embd
        self.n_head = n_head
        self.n_channels = n_embd // n_head
        self.scale = 1.0 / math.sqrt(self.n_channels)
        self.n_qx_stride = n_qx_stride
        self.n_kv_stride = n_kv_stride

        self.query_conv = self._depthwise(n_qx_stride)
        self.query_norm = ChannelLayerNorm(n_embd)
        self.key_conv = self._depthwise(n_kv_stride)
        self.key_norm = ChannelLayerNorm(n_embd)
        self.value_conv = self._depthwise(n_kv_stride)
        self.value_norm = ChannelLayerNorm(n_embd)

        self.key = nn.Conv1d(n_embd, n_embd, 1)
        self.query = nn.Conv1d(n_embd, n_embd, 1)
        self.value = nn.Conv1d(n_embd, n_embd, 1)
        self.attn_drop = nn.Dropout(attn_pdrop)
        self.proj_drop = nn.Dropout(proj_pdrop)
        self.proj = nn.Conv1d(n_embd, n_embd, 1)

    def _depthwise(self, stride: int) -> ConvModule:
        kernel_size = stride + 1 if stride > 1 else 3
        return ConvModule(
            self.n_embd,
            self.n_embd,
            kernel_size=kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            conv_cfg=dict(groups=self.n_embd, bias=False),
        )

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` -> ``[B, n_head, T, C / n_head]`` (channel = head * hs + j)."""
        B, _, T = x.shape
        return x.view(B, self.n_head, self.n_channels, T).transpose(2, 3)

    def project_qkv(self, x: torch.Tensor, mask: torch.Tensor):
        """Queries, keys, values per head and the masks of their time axes.

        Returns:
            ``(q [B, nh, Tq, hs], k [B, nh, Tk, hs], v [B, nh, Tk, hs],
            qx_mask [B, Tq], kv_mask [B, Tk])``.
        """
        q, qx_mask = self.query_conv(x, mask)
        k, kv_mask = self.key_conv(x, mask)
        v, _ = self.value_conv(x, mask)
        q = self.query(self.query_norm(q))
        k = self.key(self.key_norm(k))
        v = self.value(self.value_norm(v))
        return self._heads(q), self._heads(k), self._heads(v), qx_mask, kv_mask

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_mask: torch.Tensor) -> torch.Tensor:
        """Global attention over the valid keys: ``[B, nh, Tq, hs]``."""
        # a sample without any valid key attends to everything; its outputs are masked anyway
        key_ok = kv_mask | ~kv_mask.any(dim=-1, keepdim=True)
        dropout = self.attn_drop.p if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=key_ok[:, None, None, :], dropout_p=dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Attend.

        Args:
            x: ``[B, C, T]``.
            mask: ``[B, T]`` bool.

        Returns:
            ``(out [B, C, T / n_qx_stride], qx_mask [B, T / n_qx_stride])``.
        """
        q, k, v, qx_mask, kv_mask = self.project_qkv(x, mask)
        out = self.attend(q, k, v, kv_mask)
        B, _, Tq, _ = out.shape
        out = out.transpose(2, 3).reshape(B, self.n_embd, Tq)
        return apply_mask(self.proj_drop(self.proj(out)), qx_mask), qx_mask


class LocalMaskedMHCA(MaskedMHCA):
    """:class:`MaskedMHCA` restricted to a window around each query.

    Query ``t`` attends to the valid keys ``t - w .. t + w`` with
    ``w = window_size // 2``. Keys are gathered per block of ``w`` queries
    (each block sees ``3 w`` keys) so memory grows linearly with ``T``; any
    length works.

    Args:
        n_embd, n_head, n_qx_stride, n_kv_stride, attn_pdrop, proj_pdrop: as
            :class:`MaskedMHCA`; both strides must be equal.
        window_size: the window (> 1), 19 in ActionFormer's THUMOS config.

    Raises:
        ValueError: ``window_size`` < 2 or different q and kv strides.
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        *,
        window_size: int,
        n_qx_stride: int = 1,
        n_kv_stride: int = 1,
        attn_pdrop: float = 0.0,
        proj_pdrop: float = 0.0,
    ):
        if window_size <= 1:
            raise ValueError(f"window_size must be > 1 for local attention, got {window_size}")
        if n_qx_stride != n_kv_stride:
            raise ValueError(f"local attention needs n_qx_stride == n_kv_stride, got {n_qx_stride} and {n_kv_stride}")
        super().__init__(
            n_embd,
            n_head,
            n_qx_stride=n_qx_stride,
            n_kv_stride=n_kv_stride,
            attn_pdrop=attn_pdrop,
            proj_pdrop=proj_pdrop,
        )
        self.window_size = window_size
        self.window_overlap = window_size // 2

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_mask: torch.Tensor) -> torch.Tensor:
        """Windowed attention: ``[B, nh, T, hs]``."""
        B, nh, T, hs = q.shape
        w = self.window_overlap
        nb = -(-T // w)  # blocks of w queries
        tail = nb * w - T

        def key_blocks(t: torch.Tensor) -> torch.Tensor:  # [B, nh, T, hs] -> [B * nb, nh, 3w, hs]
            t = F.pad(t, (0, 0, w, tail + w)).unfold(2, 3 * w, w)  # [B, nh, nb, hs, 3w]
            return t.permute(0, 2, 1, 4, 3).reshape(B * nb, nh, 3 * w, hs)

        q_blocks = F.pad(q, (0, 0, 0, tail)).view(B, nh, nb, w, hs).transpose(1, 2).reshape(B * nb, nh, w, hs)
        valid = F.pad(kv_mask, (w, tail + w), value=False).unfold(1, 3 * w, w)  # [B, nb, 3w]
        offset = torch.arange(3 * w, device=q.device)[None, :] - torch.arange(w, device=q.device)[:, None]
        band = (offset >= 0) & (offset <= 2 * w)  # key t-w..t+w of query t, [w, 3w]
        # a query always may attend to itself, so no row is empty (its output is masked if invalid)
        allowed = (band & valid[:, :, None, :]) | (offset == w)
        dropout = self.attn_drop.p if self.training else 0.0
        out = F.scaled_dot_product_attention(
            q_blocks, key_blocks(k), key_blocks(v), attn_mask=allowed.reshape(B * nb, 1, w, 3 * w), dropout_p=dropout
        )
        out = out.view(B, nb, nh, w, hs).transpose(1, 2).reshape(B, nh, nb * w, hs)
        return out[:, :, :T]


class TransformerBlock(nn.Module):
    """Pre-LN transformer block with masked (local) attention and optional downsampling.

    ``out = pool(x) + drop_path(attn(LN(x)))``, then
    ``out = out + drop_path(mlp(LN(out)))``; both branches are masked.

    Args:
        in_channels: channels ``C``.
        n_head: attention heads.
        n_ds_strides: strides of (queries and skip, keys and values).
        n_hidden: MLP hidden size (default ``4 C``).
        act_layer: MLP activation class.
        attn_pdrop, proj_pdrop: dropouts of attention weights and projections.
        path_pdrop: drop-path rate; > 0 adds per-channel scales
            (``drop_path_attn.scale``, ``drop_path_mlp.scale``).
        mha_win_size: > 1 for local attention of that window, else global.
    """

    def __init__(
        self,
        in_channels: int,
        n_head: int,
        *,
        n_ds_strides: Sequence[int] = (1, 1),
        n_hidden: int | None = None,
        act_layer: type = nn.GELU,
        attn_pdrop: float = 0.0,
        proj_pdrop: float = 0.0,
        path_pdrop: float = 0.0,
        mha_win_size: int = -1,
    ):
        super().__init__()
        if len(n_ds_strides) != 2:
            raise ValueError(f"n_ds_strides must have two entries, got {n_ds_strides!r}")
        qx_stride, kv_stride = n_ds_strides
        self.ln1 = ChannelLayerNorm(in_channels)
        self.ln2 = ChannelLayerNorm(in_channels)
        attn_args = dict(n_qx_stride=qx_stride, n_kv_stride=kv_stride, attn_pdrop=attn_pdrop, proj_pdrop=proj_pdrop)
        if mha_win_size > 1:
            self.attn = LocalMaskedMHCA(in_channels, n_head, window_size=mha_win_size, **attn_args)
        else:
            self.attn = MaskedMHCA(in_channels, n_head, **attn_args)
        if qx_stride > 1:
            self.pool_skip = nn.MaxPool1d(qx_stride + 1, stride=qx_stride, padding=(qx_stride + 1) // 2)
        else:
            self.pool_skip = nn.Identity()
        n_hidden = 4 * in_channels if n_hidden is None else n_hidden
        self.mlp = nn.Sequential(
            nn.Conv1d(in_channels, n_hidden, 1),
            act_layer(),
            nn.Dropout(proj_pdrop),
            nn.Conv1d(n_hidden, in_channels, 1),
            nn.Dropout(proj_pdrop),
        )
        if path_pdrop > 0.0:
            self.drop_path_attn = AffineDropPath(in_channels, drop_prob=path_pdrop)
            self.drop_path_mlp = AffineDropPath(in_channels, drop_prob=path_pdrop)
        else:
            self.drop_path_attn = nn.Identity()
            self.drop_path_mlp = nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x [B, C, T]``, ``mask [B, T]`` -> ``(out [B, C, T'], mask [B, T'])``."""
        out, out_mask = self.attn(self.ln1(x), mask)
        out = apply_mask(self.pool_skip(x), out_mask) + self.drop_path_attn(out)
        out = out + self.drop_path_mlp(apply_mask(self.mlp(self.ln2(out)), out_mask))
        return out, out_mask
