"""VideoMambaSuite's projection (``MambaProj``); its block is :class:`opentad.models.bricks.mamba_blocks.MaskMambaBlock`."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch.nn as nn

from opentad.models.bricks.mamba_blocks import MaskMambaBlock
from opentad.models.projections.base import EmbedPyramidProj
from opentad.registry import PROJECTIONS, bind

__all__ = ["MambaProj", "MambaOptions"]

logger = logging.getLogger(__name__)


@dataclass
class MambaOptions:
    """``mamba_cfg`` of ``MambaProj``: causal conv kernel, drop-path rate, mixer ("dbm" or "vim")."""

    kernel_size: int = 4
    drop_path_rate: float = 0.3
    use_mamba_type: str = "dbm"


@PROJECTIONS.register_module()
class MambaProj(EmbedPyramidProj):
    """VideoMambaSuite's projection (Chen et al. 2024): :class:`MaskMambaBlock` stem and branch.

    Every Linear/conv bias starts at zero except Mamba's ``dt_proj.bias`` (marked ``_no_reinit``).

    Args:
        mamba_cfg: ``kernel_size`` (4), ``drop_path_rate`` (0.3) and
            ``use_mamba_type`` ("dbm" or "vim") of every block.
        **kwargs: the keys of :class:`~opentad.models.projections.base.EmbedPyramidProj`.

    Raises:
        ValueError: as ``EmbedPyramidProj``; unknown ``mamba_cfg`` keys (``ConfigError``).
    """

    def __init__(self, *, mamba_cfg: Optional[Mapping[str, Any]] = None, **kwargs):
        self.mamba_opts = bind(MambaOptions, mamba_cfg, path="MambaProj.mamba_cfg")
        super().__init__(**kwargs)

    def make_block(self, index: int, width: int, stride: int) -> nn.Module:
        """A :class:`MaskMambaBlock` with the ``mamba_cfg`` options."""
        opts = self.mamba_opts
        return MaskMambaBlock(
            width,
            kernel_size=opts.kernel_size,
            n_ds_stride=stride,
            drop_path_rate=opts.drop_path_rate,
            use_mamba_type=opts.use_mamba_type,
        )
