"""VideoMAE vision-transformer bricks: patch embedding, attention, FFN, block.

Every linear layer of the transformer is made by an injected *linear
factory* ``factory(name, in_features, out_features, bias) -> nn.Module``
(``name`` is ``"qkv"``, ``"proj"``, ``"fc1"`` or ``"fc2"``), so a quantized or
LoRA layer replaces ``nn.Linear`` without forking the block. A block can also
carry an adapter module (built by the caller's adapter factory, see
:mod:`opentad.models.bricks.vit_adapter`) applied after the MLP residual.

The module tree reproduces the state-dict names of upstream OpenTAD (which
uses mmcv's ``PatchEmbed`` and ``FFN``)::

    patch_embed.projection.{weight,bias}
    blocks.{i}.norm1.{weight,bias}
    blocks.{i}.attn.{q_bias,v_bias,qkv.weight,proj.weight,proj.bias}
    blocks.{i}.norm2.{weight,bias}
    blocks.{i}.mlp.layers.0.0.{weight,bias}     # fc1
    blocks.{i}.mlp.layers.1.{weight,bias}       # fc2
    blocks.{i}.adapter.*                        # when the block has one
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opentad.models.bricks.pos_embed import get_sinusoid_encoding, resize_pos_embed

__all__ = [
    "LinearFactory",
    "default_linear_factory",
    "get_sinusoid_encoding",
    "resize_pos_embed",
    "DropPath",
    "PatchEmbed3D",
    "Attention",
    "FFN",
    "Block",
]

#: ``factory(name, in_features, out_features, bias) -> module`` computing ``x @ W.T + b``.
LinearFactory = Callable[[str, int, int, bool], nn.Module]


def default_linear_factory(name: str, in_features: int, out_features: int, bias: bool) -> nn.Module:
    """A plain float ``nn.Linear`` whatever the ``name``."""
    return nn.Linear(in_features, out_features, bias=bias)


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch per sample with probability ``drop_prob``.

    Kept samples are scaled by ``1 / (1 - drop_prob)``; identity in eval mode.

    Args:
        drop_prob: probability of dropping the branch of a sample.
    """

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def scales(self, x: Tensor, dtype: Optional[torch.dtype] = None) -> Optional[Tensor]:
        """Draw the per-sample factors for ``x`` (``[B, 1, ...]``: 0 or ``1 / keep``, in ``dtype``, default
        ``x``'s); None when inactive."""
        if self.drop_prob == 0.0 or not self.training:
            return None
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = torch.empty(shape, device=x.device, dtype=dtype or x.dtype).bernoulli_(keep)
        return mask / keep

    def scales_ahead(self, x: Tensor) -> Optional[Tensor]:
        """The factors for a branch of ``x``'s rows, drawn before the branch exists (its dtype unknown yet).

        Drawn in float32 (float64 for float64 ``x``): eager divides in float32
        for float16, bfloat16 and float32 alike, and draws the same numbers for
        them (one per row), so :meth:`forward`'s cast to the branch's dtype
        gives the factors the branch would have drawn itself, bit for bit.
        """
        return self.scales(x, torch.float64 if x.dtype == torch.float64 else torch.float32)

    def forward(self, x: Tensor, scale: Optional[Tensor] = None) -> Tensor:
        """Drop samples of ``x``, with factors drawn now or given (``scale`` from :meth:`scales_ahead`)."""
        scale = self.scales(x) if scale is None else scale.to(x.dtype)
        return x if scale is None else x * scale

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class PatchEmbed3D(nn.Module):
    """Tubelet embedding: a Conv3d with kernel = stride = ``(tubelet, patch, patch)``.

    Args:
        in_channels: input channels (3 for RGB).
        embed_dims: token width ``C``.
        patch_size: spatial patch size (16, or 14 for ViT-g).
        tubelet_size: frames per token.
    """

    def __init__(self, *, in_channels: int = 3, embed_dims: int = 768, patch_size: int = 16, tubelet_size: int = 2):
        super().__init__()
        kernel = (tubelet_size, patch_size, patch_size)
        self.projection = nn.Conv3d(in_channels, embed_dims, kernel_size=kernel, stride=kernel)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int, int]]:
        """Embed ``[B, 3, T, H, W]`` frames.

        Returns:
            tokens ``[B, t*h*w, C]`` ordered time-major (t, then h, then w),
            and the token grid ``(t, h, w)``.
        """
        x = self.projection(x)
        grid = tuple(x.shape[2:])
        # contiguous tokens: every later layer norm, residual sum and matmul reads rows of C values
        # (the transposed view made each of them strided: ViT-S forward 1.37x slower on an H100)
        return x.flatten(2).transpose(1, 2).contiguous(), grid


class Attention(nn.Module):
    """VideoMAE multi-head self-attention.

    ``qkv`` has no bias of its own; with ``qkv_bias`` the learnable ``q_bias``
    and ``v_bias`` are added to the query and value thirds of its output (the
    key gets none). Attention itself is
    ``F.scaled_dot_product_attention``.

    Args:
        embed_dims: token width ``C``.
        num_heads: attention heads (``C`` must be divisible by it).
        qkv_bias: learn ``q_bias`` and ``v_bias``.
        qk_scale: overrides ``head_dim ** -0.5``.
        attn_drop_rate: dropout on attention weights (training only).
        drop_rate: dropout after ``proj``.
        linear_factory: makes ``qkv`` and ``proj``.

    Raises:
        ValueError: ``embed_dims`` not divisible by ``num_heads``.
    """

    def __init__(
        self,
        *,
        embed_dims: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        attn_drop_rate: float = 0.0,
        drop_rate: float = 0.0,
        linear_factory: LinearFactory = default_linear_factory,
    ):
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(f"Attention: embed_dims={embed_dims} is not divisible by num_heads={num_heads}")
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.scale = qk_scale if qk_scale is not None else (embed_dims // num_heads) ** -0.5
        self.attn_drop_rate = float(attn_drop_rate)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(embed_dims))
            self.v_bias = nn.Parameter(torch.zeros(embed_dims))
        else:
            self.q_bias = None
            self.v_bias = None
        self.qkv = linear_factory("qkv", embed_dims, embed_dims * 3, False)
        self.proj = linear_factory("proj", embed_dims, embed_dims, True)
        self.proj_drop = nn.Dropout(drop_rate)

    def qkv_bias(self) -> Optional[Tensor]:
        """The ``(q_bias, 0, v_bias)`` bias ``[3C]`` of ``qkv``'s output, or None without ``qkv_bias``."""
        if self.q_bias is None:
            return None
        return torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))

    def project_qkv(self, x: Tensor) -> Tensor:
        """``[B, N, C] -> [B, N, 3C]``: ``qkv(x)`` plus :meth:`qkv_bias`.

        A plain ``nn.Linear`` takes the bias into its product, ``F.linear(x, W, bias)``, as upstream's VideoMAE
        computes it: the sum is rounded once (in bf16, adding it to the rounded product afterwards differs in
        the last bit of about a quarter of the values). Other layers (4-bit, LoRA) add it to their output.
        """
        bias = self.qkv_bias()
        if bias is None:
            return self.qkv(x)
        if type(self.qkv) is nn.Linear and self.qkv.bias is None:
            return F.linear(x, self.qkv.weight, bias.to(self.qkv.weight.dtype))
        qkv = self.qkv(x)
        return qkv + bias.to(qkv.dtype)

    def attend(self, qkv: Tensor) -> Tensor:
        """``[B, N, 3C] -> [B, N, C]``: attention of the projected queries, keys and values, then ``proj``."""
        b, n, c = qkv.shape[0], qkv.shape[1], self.embed_dims
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        dropout = self.attn_drop_rate if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=self.scale)
        x = x.transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))

    def forward(self, x: Tensor) -> Tensor:
        """``[B, N, C] -> [B, N, C]``."""
        return self.attend(self.project_qkv(x))


class FFN(nn.Module):
    """Two-layer MLP ``fc2(drop(act(fc1(x))))`` laid out as mmcv's ``FFN``.

    ``layers`` is ``Sequential(Sequential(fc1, GELU, Dropout), fc2, Dropout)``
    so that the state-dict names are ``layers.0.0.*`` (fc1) and ``layers.1.*``
    (fc2), as in upstream checkpoints.

    Args:
        embed_dims: input and output width ``C``.
        hidden_dims: width of the hidden layer.
        drop_rate: dropout after the activation and after ``fc2``.
        linear_factory: makes ``fc1`` and ``fc2``.
    """

    def __init__(
        self,
        *,
        embed_dims: int,
        hidden_dims: int,
        drop_rate: float = 0.0,
        linear_factory: LinearFactory = default_linear_factory,
    ):
        super().__init__()
        fc1 = linear_factory("fc1", embed_dims, hidden_dims, True)
        fc2 = linear_factory("fc2", hidden_dims, embed_dims, True)
        self.layers = nn.Sequential(
            nn.Sequential(fc1, nn.GELU(), nn.Dropout(drop_rate)), fc2, nn.Dropout(drop_rate)
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[..., C] -> [..., C]``."""
        return self.layers(x)


class Block(nn.Module):
    """Pre-norm transformer block with an optional adapter after the MLP residual.

    ``x = x + drop_path(attn(norm1(x)))``; ``x = x + drop_path(mlp(norm2(x)))``;
    then ``x = adapter(x, grid)`` when an adapter is given (the adapter
    includes its own residual). A plain module: checkpointing and the other
    memory options are applied from outside (:mod:`opentad.models.memory`).

    Args:
        embed_dims: token width ``C``.
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLP is ``int(C * mlp_ratio)``.
        drop_rate: dropout after projections.
        drop_path_rate: stochastic-depth probability of both residual branches.
        norm_eps: LayerNorm epsilon.
        linear_factory: makes ``qkv``, ``proj``, ``fc1``, ``fc2``.
        adapter: a module ``adapter(x [B, N, C], grid (h, w)) -> [B, N, C]``, or None.
        **attn_options: the other :class:`Attention` keys (``qkv_bias``, ``qk_scale``, ``attn_drop_rate``).
    """

    def __init__(
        self,
        *,
        embed_dims: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        linear_factory: LinearFactory = default_linear_factory,
        adapter: Optional[nn.Module] = None,
        **attn_options: Any,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = Attention(
            embed_dims=embed_dims, num_heads=num_heads, drop_rate=drop_rate, linear_factory=linear_factory,
            **attn_options,
        )
        self.drop_path = DropPath(drop_path_rate)
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.mlp = FFN(
            embed_dims=embed_dims,
            hidden_dims=int(embed_dims * mlp_ratio),
            drop_rate=drop_rate,
            linear_factory=linear_factory,
        )
        self.adapter = adapter

    def residual(self, x: Tensor, scales: Tuple[Optional[Tensor], Optional[Tensor]] = (None, None),
                 mlp: Optional[Callable[[nn.Module, Tensor], Tensor]] = None) -> Tensor:
        """Attention and MLP with their residuals (no adapter); ``scales``: stochastic-depth factors, or drawn;
        ``mlp``: computes the MLP branch as ``mlp(self.mlp, h)`` instead of ``self.mlp(h)`` (a memory option's)."""
        x = x + self.drop_path(self.attention_branch(x), scales[0])
        return x + self.drop_path(self.mlp_branch(x, mlp), scales[1])

    def attention_branch(self, x: Tensor) -> Tensor:
        """``attn(norm1(x))``: ``[B, N, C] -> [B, N, C]`` (a hook: memory options fuse the norm with ``qkv``)."""
        return self.attn(self.norm1(x))

    def mlp_branch(self, x: Tensor, mlp: Optional[Callable[[nn.Module, Tensor], Tensor]] = None) -> Tensor:
        """``mlp(norm2(x))``, or ``mlp(self.mlp, norm2(x))`` with ``mlp``: ``[B, N, C] -> [B, N, C]`` (a hook)."""
        h = self.norm2(x)
        return self.mlp(h) if mlp is None else mlp(self.mlp, h)

    def residual_dropout(self) -> bool:
        """Whether the attention and MLP draw random numbers now besides stochastic depth (active dropout)."""
        if not self.training:
            return False
        drops = [m.p for part in (self.attn, self.mlp) for m in part.modules() if isinstance(m, nn.Dropout)]
        return self.attn.attn_drop_rate > 0 or any(p > 0 for p in drops)

    def forward(self, x: Tensor, grid: Tuple[int, int]) -> Tensor:
        """Tokens ``[B, t*h*w, C]`` and the spatial token grid ``(h, w)`` (for the adapter) -> ``[B, t*h*w, C]``."""
        x = self.residual(x)
        return x if self.adapter is None else self.adapter(x, grid)
