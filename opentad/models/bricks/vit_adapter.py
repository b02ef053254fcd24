"""Adapters for a frozen video ViT: AdaTAD's temporal-informative adapter (TIA).

A TIA sits after a transformer block and adds, with a learnable scalar
``gamma``::

    h = GELU(down_proj(x))                      # C -> C * mlp_ratio
    h = h + conv(dwconv(h))                     # temporal mixing, see temporal_mix
    out = x + gamma * up_proj(h)                # up_proj starts at zero

so that at initialisation it is the identity. The temporal mixing runs a
depthwise Conv1d (kernel 3) and a pointwise Conv1d along time *across the
clips of a video*: the backbone sees a video as consecutive clips (``B`` is
``videos x clips``) and the adapter reassembles ``total_frames //
tubelet_size`` time steps per spatial position.

The projections come from a linear factory (names ``"down_proj"`` and
``"up_proj"``), so a quantized/LoRA adapter reuses :func:`temporal_mix`,
``gamma`` and the residual unchanged. Every adapter derives from
:class:`AdapterBase` and declares which of its parameters train.

State-dict names (as upstream): ``down_proj.*``, ``up_proj.*``,
``dwconv.*``, ``conv.*``, ``gamma``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterator, Tuple

import torch
from torch import Tensor, nn

from opentad.models.bricks.vit import LinearFactory, default_linear_factory

__all__ = [
    "AdapterBase",
    "AdapterSpec",
    "AdapterFactory",
    "temporal_mix",
    "make_temporal_convs",
    "TemporalAdapter",
    "PlainAdapter",
    "tia_adapter_factory",
    "plain_adapter_factory",
]


@dataclasses.dataclass(frozen=True)
class AdapterSpec:
    """What an adapter factory is told about the place it builds for.

    Args:
        block_index: index of the transformer block (or ladder slot).
        embed_dims: token width ``C``.
        mlp_ratio: the adapter's hidden width is ``int(C * mlp_ratio)``.
        temporal_size: time steps per video seen by the temporal convolution
            (``total_frames // tubelet_size``).
        residual: add the input back (block adapters); False for side/ladder
            branches, which return only ``gamma * up_proj(...)``.
    """

    block_index: int
    embed_dims: int
    mlp_ratio: float = 0.25
    temporal_size: int = 384
    residual: bool = True


class AdapterBase(nn.Module):
    """A module that trains while the backbone around it is frozen.

    ``forward(x [B, N, C], grid (h, w)) -> [B, N, C]``. Subclasses whose
    parameters do not all train (e.g. a quantized projection) override
    :meth:`trainable_parameters`.
    """

    def trainable_parameters(self) -> Iterator[Tuple[str, nn.Parameter]]:
        """``(name, parameter)`` pairs that receive gradients; all by default."""
        return self.named_parameters()


#: ``factory(spec) -> AdapterBase``.
AdapterFactory = Callable[[AdapterSpec], AdapterBase]


def make_temporal_convs(hidden_dims: int, kernel_size: int = 3, dilation: int = 1) -> Tuple[nn.Conv1d, nn.Conv1d]:
    """The depthwise (``kernel_size``) and pointwise Conv1d of a TIA, initialised as upstream.

    The depthwise weights are ``N(0, sqrt(2/kernel_size))``, the pointwise
    ``N(0, sqrt(2/hidden_dims))``, biases zero; "same" padding.
    """
    dwconv = nn.Conv1d(
        hidden_dims,
        hidden_dims,
        kernel_size=kernel_size,
        padding=(kernel_size // 2) * dilation,
        dilation=dilation,
        groups=hidden_dims,
    )
    conv = nn.Conv1d(hidden_dims, hidden_dims, kernel_size=1)
    with torch.no_grad():
        dwconv.weight.normal_(0.0, math.sqrt(2.0 / kernel_size))
        dwconv.bias.zero_()
        conv.weight.normal_(0.0, math.sqrt(2.0 / hidden_dims))
        conv.bias.zero_()
    return dwconv, conv


def temporal_mix(x: Tensor, grid: Tuple[int, int], temporal_size: int, dwconv: nn.Module, conv: nn.Module) -> Tensor:
    """Convolve tokens along the time of whole videos, per spatial position.

    Args:
        x: ``[B, t*h*w, C]`` tokens of ``B`` clips; consecutive clips belong to
            one video, ``temporal_size // t`` clips per video.
        grid: ``(h, w)``.
        temporal_size: time steps of one video.
        dwconv, conv: modules on ``[V*h*w, C, temporal_size]``.

    Returns:
        ``conv(dwconv(.))`` laid back out as ``[B, t*h*w, C]``.

    Raises:
        ValueError: the tokens do not split into whole videos of ``temporal_size`` steps.
    """
    b, n, c = x.shape
    h, w = grid
    steps = b * n // (h * w) if n % (h * w) == 0 else -1
    if steps <= 0 or steps % temporal_size != 0:
        raise ValueError(
            f"temporal adapter: {b} clips of {n} tokens on a {h}x{w} grid do not make whole videos of "
            f"temporal_size={temporal_size} steps; set the backbone's total_frames to the frames per video "
            f"(window_size * scale_factor)"
        )
    y = x.reshape(-1, temporal_size, h, w, c).permute(0, 2, 3, 4, 1).flatten(0, 2)  # [V*h*w, C, T]
    y = conv(dwconv(y))
    y = y.unflatten(0, (-1, h, w)).permute(0, 4, 1, 2, 3)  # [V, T, h, w, C]
    return y.reshape(b, n, c)


def scaled_residual(up: Tensor, gamma: Tensor, x: Tensor) -> Tensor:
    """``up * gamma + x`` (``[B, N, C]``, ``gamma`` ``[1]``), as upstream's adapters compute it."""
    return up * gamma + x


class _ProjectionAdapter(AdapterBase):
    """Shared part of the adapters: down projection, GELU, up projection, gamma.

    ``residual_op(up, gamma, x)`` computes the scaled residual: :func:`scaled_residual`,
    unless the memory policy installs a fused kernel with the same rounding
    (:mod:`opentad.models.memory.fused_residual`).
    """

    residual_op = staticmethod(scaled_residual)

    def __init__(self, *, embed_dims: int, mlp_ratio: float, residual: bool, linear_factory: LinearFactory):
        super().__init__()
        hidden_dims = int(embed_dims * mlp_ratio)
        if hidden_dims < 1:
            raise ValueError(f"adapter: embed_dims={embed_dims} * mlp_ratio={mlp_ratio} gives no hidden channel")
        self.hidden_dims = hidden_dims
        self.residual = residual
        self.down_proj = linear_factory("down_proj", embed_dims, hidden_dims, True)
        self.act = nn.GELU()
        self.up_proj = linear_factory("up_proj", hidden_dims, embed_dims, True)
        self.gamma = nn.Parameter(torch.ones(1))
        self.reset_projections()

    def reset_projections(self) -> None:
        """``down_proj`` ~ truncated N(0, 0.02), ``up_proj`` = 0, biases 0, ``gamma`` = 1.

        Only plain ``nn.Linear`` projections are touched; other layers made by
        a custom factory initialise themselves.
        """
        with torch.no_grad():
            if type(self.down_proj) is nn.Linear:
                nn.init.trunc_normal_(self.down_proj.weight, std=0.02)
                nn.init.zeros_(self.down_proj.bias)
            if type(self.up_proj) is nn.Linear:
                nn.init.zeros_(self.up_proj.weight)
                nn.init.zeros_(self.up_proj.bias)
            self.gamma.fill_(1.0)

    def _mix(self, h: Tensor, grid: Tuple[int, int]) -> Tensor:
        return h

    def forward(self, x: Tensor, grid: Tuple[int, int]) -> Tensor:
        """``[B, N, C] -> [B, N, C]``; ``grid`` is the spatial token grid ``(h, w)``."""
        h = self.act(self.down_proj(x))
        h = self._mix(h, grid)
        if self.residual:
            return self.residual_op(self.up_proj(h), self.gamma, x)
        return self.up_proj(h) * self.gamma


class TemporalAdapter(_ProjectionAdapter):
    """AdaTAD's temporal-informative adapter (TIA).

    Args:
        embed_dims: token width ``C``.
        mlp_ratio: hidden width ``int(C * mlp_ratio)``.
        kernel_size: depthwise temporal kernel.
        dilation: depthwise temporal dilation.
        temporal_size: time steps of one video (``total_frames // tubelet_size``).
        residual: add the input back (False for ladder/side branches).
        linear_factory: makes ``down_proj`` and ``up_proj``.
    """

    def __init__(
        self,
        *,
        embed_dims: int,
        mlp_ratio: float = 0.25,
        kernel_size: int = 3,
        dilation: int = 1,
        temporal_size: int = 384,
        residual: bool = True,
        linear_factory: LinearFactory = default_linear_factory,
    ):
        super().__init__(embed_dims=embed_dims, mlp_ratio=mlp_ratio, residual=residual, linear_factory=linear_factory)
        self.temporal_size = temporal_size
        self.dwconv, self.conv = make_temporal_convs(self.hidden_dims, kernel_size, dilation)

    def _mix(self, h: Tensor, grid: Tuple[int, int]) -> Tensor:
        return h + temporal_mix(h, grid, self.temporal_size, self.dwconv, self.conv)


class PlainAdapter(_ProjectionAdapter):
    """Bottleneck adapter without temporal mixing (the ablation of the TIA).

    Args:
        embed_dims: token width ``C``.
        mlp_ratio: hidden width ``int(C * mlp_ratio)``.
        residual: add the input back.
        linear_factory: makes ``down_proj`` and ``up_proj``.
    """

    def __init__(
        self,
        *,
        embed_dims: int,
        mlp_ratio: float = 0.25,
        residual: bool = True,
        linear_factory: LinearFactory = default_linear_factory,
    ):
        super().__init__(embed_dims=embed_dims, mlp_ratio=mlp_ratio, residual=residual, linear_factory=linear_factory)


def tia_adapter_factory(spec: AdapterSpec, linear_factory: LinearFactory = default_linear_factory) -> TemporalAdapter:
    """Build a :class:`TemporalAdapter` (kernel 3) for ``spec``."""
    return TemporalAdapter(
        embed_dims=spec.embed_dims,
        mlp_ratio=spec.mlp_ratio,
        temporal_size=spec.temporal_size,
        residual=spec.residual,
        linear_factory=linear_factory,
    )


def plain_adapter_factory(spec: AdapterSpec, linear_factory: LinearFactory = default_linear_factory) -> PlainAdapter:
    """Build a :class:`PlainAdapter` for ``spec``."""
    return PlainAdapter(
        embed_dims=spec.embed_dims, mlp_ratio=spec.mlp_ratio, residual=spec.residual, linear_factory=linear_factory
    )
