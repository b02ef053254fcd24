"""DyFADet's projection: conv embedding, then dynamic encoder layers (stem at full rate, downsampling branch)."""
from __future__ import annotations

import logging
from typing import Sequence, Union

import torch.nn as nn

from opentad.models.bricks.dyne_layer import DynELayer
from opentad.models.projections.base import PyramidProj
from opentad.registry import PROJECTIONS

__all__ = ["DynEProj"]

logger = logging.getLogger(__name__)


@PROJECTIONS.register_module()
class DynEProj(PyramidProj):
    """Features ``[B, C_in, T]`` -> pyramid of ``1 + arch[2]`` levels ``[B, C_out, ceil(T / 2^l)]``.

    ``arch = (n_embed, n_stem, n_branch)``: ``n_embed`` masked conv+LN+ReLU layers (kernel 3),
    ``n_stem`` :class:`DynELayer` at full rate (kernel 1, no drop path), then ``n_branch``
    layers that each halve the length (kernel ``encoder_win_size``, drop path ``path_pdrop``);
    the stem output and every branch output form the pyramid. Every bias of a conv starts at 0.

    As upstream, the input is not masked on entry (training noise reaches padded steps too)
    and the encoder layers do not zero padded steps (see :class:`DynELayer`).

    Args:
        in_channels, out_channels, arch, use_abs_pe, max_seq_len, input_noise: as
            :class:`~opentad.models.projections.base.PyramidProj`.
        mlp_dim: MLP width of the encoder layers.
        encoder_win_size: odd kernel of the branch layers' ``psi`` / ``convw``.
        k: kernel expansion of the wide branch (``convkw``).
        init_conv_vars: init std of the encoder layers' dynamic convs (0: they stay 0).
        path_pdrop: drop-path rate of the branch layers.

    Raises:
        ValueError: bad ``arch`` or channel lists; (forward) a training input longer than
            ``max_seq_len`` with ``use_abs_pe``.
    """

    def __init__(
        self,
        *,
        in_channels: Union[int, Sequence[int]],
        out_channels: Union[int, Sequence[int]],
        arch: Sequence[int] = (2, 2, 5),
        use_abs_pe: bool = False,
        max_seq_len: int = 2304,
        mlp_dim: int = 512,
        encoder_win_size: int = 1,
        k: float = 1.5,
        init_conv_vars: float = 1.0,
        path_pdrop: float = 0.0,
        input_noise: float = 0.0,
    ):
        self.encoder_win_size = encoder_win_size
        self.path_pdrop = path_pdrop
        self._layer = dict(n_hidden=mlp_dim, k=k, init_conv_vars=init_conv_vars)
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            arch=arch,
            kernel_size=3,
            norm_cfg=dict(type="LN"),
            use_abs_pe=use_abs_pe,
            max_seq_len=max_seq_len,
            input_noise=input_noise,
        )

    def make_block(self, index: int, width: int, stride: int) -> nn.Module:
        """Encoder layer: in the stem kernel 1 and no drop path; in the branch
        kernel ``encoder_win_size`` and drop path ``path_pdrop``."""
        if stride == 1:
            return DynELayer(width, kernel_size=1, n_ds_stride=1, **self._layer)
        return DynELayer(
            width, kernel_size=self.encoder_win_size, n_ds_stride=stride, path_pdrop=self.path_pdrop, **self._layer
        )
