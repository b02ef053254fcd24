"""ActionFormer's projection: conv embedding, transformer stem, downsampling branch."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

import torch.nn as nn

from opentad.models.bricks.transformer import TransformerBlock
from opentad.models.projections.base import EmbedPyramidProj, per_level
from opentad.registry import PROJECTIONS, bind

__all__ = ["Conv1DTransformerProj", "ConvOptions", "AttnOptions"]

logger = logging.getLogger(__name__)


@dataclass
class ConvOptions:
    """``conv_cfg``: kernel size of the embedding convs, dropout of the attention / MLP projections."""

    kernel_size: int = 3
    proj_pdrop: float = 0.0


@dataclass
class AttnOptions:
    """``attn_cfg``: heads, and the attention window (one, or one per level; -1: global)."""

    n_head: int = 4
    n_mha_win_size: Union[int, Sequence[int]] = -1


@PROJECTIONS.register_module()
class Conv1DTransformerProj(EmbedPyramidProj):
    """Features ``[B, C_in, T]`` -> pyramid of ``1 + arch[2]`` levels ``[B, C_out, T / 2^l]``.

    ``arch = (n_embed, n_stem, n_branch)``: ``n_embed`` masked convs, ``n_stem``
    transformer blocks at full rate, then ``n_branch`` blocks that each halve
    the length; the stem output and every branch output form the pyramid.

    Padded steps are zeroed on entry and stay zero in every output, so what a
    padded step holds never changes a valid output.

    Args:
        attn_cfg: ``n_head`` (4) and ``n_mha_win_size``: one window size or one
            per level (``1 + n_branch`` entries); -1 means global attention.
        path_pdrop: drop-path rate of the transformer blocks.
        **kwargs: the keys of :class:`~opentad.models.projections.base.EmbedPyramidProj`;
            ``conv_cfg`` takes ``kernel_size`` (3) and ``proj_pdrop``, the dropout
            of the attention/MLP projections (0.0).

    Raises:
        ValueError: bad ``arch``, window list length, option keys, or channel lists.
    """

    mask_input = True
    conv_options = ConvOptions

    def __init__(self, *, attn_cfg: Optional[Mapping[str, Any]] = None, path_pdrop: float = 0.0, **kwargs):
        attn = bind(AttnOptions, attn_cfg, path=f"{type(self).__name__}.attn_cfg")
        self.n_head = attn.n_head
        self.n_mha_win_size = attn.n_mha_win_size
        self.path_pdrop = path_pdrop
        super().__init__(**kwargs)

    def check_options(self) -> None:
        """One attention window per level (``mha_win_size``); ``proj_pdrop`` from ``conv_cfg``.

        Raises:
            ValueError: ``attn_cfg.n_mha_win_size`` is a list without ``1 + arch[2]`` entries.
        """
        self.proj_pdrop = self.conv_opts.proj_pdrop
        self.mha_win_size = per_level(self.n_mha_win_size, 1 + self.arch[2], "attn_cfg.n_mha_win_size")

    def make_block(self, index: int, width: int, stride: int) -> nn.Module:
        """Transformer block, window ``mha_win_size[0]`` in the stem, ``mha_win_size[1 + index]`` in the branch."""
        return TransformerBlock(
            width,
            self.n_head,
            n_ds_strides=(stride, stride),
            mha_win_size=self.mha_win_size[0 if stride == 1 else 1 + index],
            attn_pdrop=0.0,
            proj_pdrop=self.proj_pdrop,
            path_pdrop=self.path_pdrop,
        )
