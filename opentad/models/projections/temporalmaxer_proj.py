"""TemporalMaxer's projection: conv embedding, then a max-pooling pyramid."""
from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Sequence, Union

import torch.nn as nn

from opentad.models.bricks.temporal_maxer import TemporalMaxerBlock
from opentad.models.projections.actionformer_proj import ConvOptions
from opentad.models.projections.base import PyramidProj
from opentad.registry import PROJECTIONS, bind

__all__ = ["TemporalMaxerProj"]

logger = logging.getLogger(__name__)


@PROJECTIONS.register_module()
class TemporalMaxerProj(PyramidProj):
    """Features ``[B, C_in, T]`` -> pyramid of ``1 + arch[2]`` levels ``[B, C_out, ceil(T / 2^l)]``.

    ``arch = (n_embed, n_stem, n_branch)``: ``n_embed`` masked conv + norm + ReLU
    layers, then ``n_branch`` parameter-free :class:`TemporalMaxerBlock` (kernel 3,
    stride 2, padding 1); the embedding output and every block output form the
    pyramid. ``n_stem`` is not used (upstream's configs set 0; another value is
    ignored with a warning, as upstream ignores it).

    As upstream, the input is not masked on entry: padded steps should hold
    zeros (the padding transforms write zeros).

    Args:
        in_channels, out_channels, arch, norm_cfg: as :class:`~opentad.models.projections.base.PyramidProj`.
        conv_cfg: ``kernel_size`` of the embedding convs (3); ``proj_pdrop`` is accepted and unused.
        drop_out: channel dropout (``nn.Dropout1d``) on the input features, before the input convs.

    Raises:
        ValueError: ``arch`` is not three numbers; channel lists of different lengths.
    """

    dropout_before_proj = True
    uses_stem = False
    zero_init_bias = False

    def __init__(
        self,
        *,
        in_channels: Union[int, Sequence[int]],
        out_channels: Union[int, Sequence[int]],
        arch: Sequence[int] = (2, 0, 5),
        conv_cfg: Optional[Mapping[str, Any]] = None,
        norm_cfg: Optional[Mapping[str, Any]] = None,
        drop_out: float = 0.0,
    ):
        conv = bind(ConvOptions, conv_cfg, path="TemporalMaxerProj.conv_cfg")
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            arch=arch,
            kernel_size=conv.kernel_size,
            norm_cfg=norm_cfg,
            input_pdrop=drop_out,
        )

    def check_options(self) -> None:
        """Warn that ``arch[1]`` (stem blocks) is ignored when it is not 0."""
        if self.arch[1] != 0:
            logger.warning("TemporalMaxerProj ignores arch[1] (stem blocks) = %d, as upstream does", self.arch[1])

    def make_block(self, index: int, width: int, stride: int) -> nn.Module:
        """Parameter-free max-pooling block (branch only): kernel 3, stride 2, padding 1."""
        return TemporalMaxerBlock(kernel_size=3, stride=stride, padding=1)
