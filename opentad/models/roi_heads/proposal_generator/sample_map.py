"""ETAD's sampled proposal map: a subset of the ``[D, T]`` (duration, start) proposals per sample."""
from __future__ import annotations

import logging
import math
import random

import numpy as np
import torch
import torch.nn as nn

from opentad.models.roi_heads.proposal_generator.dense_map import dense_proposal_map
from opentad.registry import ROI_HEADS

__all__ = ["ProposalMapSampling", "STRATEGIES"]

logger = logging.getLogger(__name__)

STRATEGIES = ("random", "grid", "block")


@ROI_HEADS.register_module()
class ProposalMapSampling(nn.Module):
    """Proposals ``[start, end]`` of the map of ``dscale`` durations by ``tscale`` starts.

    Entry ``(d, t)`` is the proposal ``[t, t + d + 1]``, valid when
    ``t + d + 1 <= tscale`` (:func:`dense_proposal_map`, BMN's map). Proposals come in row-major order of the map
    (durations, then starts):

    * training (``training=True`` and the module in train mode): per sample,
      ``sample_num = int(float32(num_valid * sampling_ratio))`` proposals drawn
      with Python's ``random`` as upstream: ``random.sample`` of the valid
      entries (``"random"``), the grid below (``"grid"``), or one square block
      of ``int(sqrt(sample_num))`` durations by as many starts at a random
      corner (``"block"``);
    * validation losses (``training=True``, eval mode): the grid, every
      ``sqrt(1 / sampling_ratio)``-th duration and start from 1 (rounded), valid entries only;
    * test (``training=False``): every valid proposal.

    Holds no parameters (no state-dict keys).

    Args:
        tscale: ``T``, the starts (the feature length).
        dscale: ``D``, the durations.
        sampling_ratio: share of the valid proposals drawn in training.
        strategy: ``"random"``, ``"grid"`` or ``"block"``.

    Raises:
        ValueError: unknown ``strategy``; ``sampling_ratio`` not in ``(0, 1]``; a grid
            duration rounds to ``dscale`` where a start still fits (upstream's IndexError).
    """

    def __init__(self, *, tscale: int, dscale: int, sampling_ratio: float = 0.06, strategy: str = "random"):
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"ProposalMapSampling: strategy={strategy!r} is not one of {list(STRATEGIES)}")
        if not 0 < sampling_ratio <= 1:
            raise ValueError(f"ProposalMapSampling: sampling_ratio must lie in (0, 1], got {sampling_ratio}")
        self.tscale = tscale
        self.dscale = dscale
        self.sampling_ratio = sampling_ratio
        self.strategy = strategy
        proposal_map, valid = dense_proposal_map(tscale, dscale)
        self.register_buffer("proposal_map", proposal_map, persistent=False)  # [D, T, 2], invalid: [0, 0]
        self.register_buffer("valid_mask", valid, persistent=False)  # [D, T]
        self.register_buffer("grid_mask", self._grid_mask(), persistent=False)  # [D, T]
        # upstream multiplies an int32 count by the ratio in float32 before truncating
        self.sample_num = int(torch.tensor(int(valid.sum()), dtype=torch.int32) * sampling_ratio)

    def _grid_mask(self) -> torch.Tensor:
        step = math.sqrt(1 / self.sampling_ratio)
        mask = torch.zeros(self.dscale, self.tscale, dtype=torch.bool)
        for d in np.arange(1, self.dscale, step).round().astype(int):
            for t in np.arange(1, self.tscale, step).round().astype(int):
                if t + d >= self.tscale:
                    continue
                if d >= self.dscale:  # upstream fails here with an IndexError
                    raise ValueError(
                        f"ProposalMapSampling: the validation grid (step sqrt(1 / {self.sampling_ratio})) rounds to "
                        f"duration {d}, outside dscale={self.dscale}; change dscale or sampling_ratio"
                    )
                mask[d, t] = True
        return mask

    def forward(self, bs: int, device: torch.device, training: bool = False) -> torch.Tensor:
        """``[B, K, 2]`` proposals on ``device`` (``K`` the same for every sample)."""
        if training and self.training:
            proposals = torch.stack([self.sample_proposal_map() for _ in range(bs)], dim=0)
        else:
            mask = self.grid_mask if training else self.valid_mask
            proposals = self.proposal_map[mask].unsqueeze(0).repeat(bs, 1, 1)
        return proposals.to(device)

    def sample_proposal_map(self) -> torch.Tensor:
        """One sample's ``[K, 2]`` training proposals (``strategy``), drawn with Python's ``random``."""
        if self.strategy == "grid":
            return self.proposal_map[self.grid_mask]
        if self.strategy == "random":
            picked = sorted(random.sample(range(int(self.valid_mask.sum())), self.sample_num))
            return self.proposal_map[self.valid_mask][torch.tensor(picked, dtype=torch.long)]
        width = int(math.sqrt(self.sample_num))
        d0 = random.randint(0, self.dscale - 2 * width)
        t0 = random.randint(0, self.tscale - 2 * width - d0)
        block = torch.zeros_like(self.valid_mask)
        block[d0 : d0 + width, t0 : t0 + width] = True
        return self.proposal_map[block & self.valid_mask]  # upstream's test t + d < tscale: the valid entries
