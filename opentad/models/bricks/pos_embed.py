"""VideoMAE's fixed sine-cosine position table and its resizing to another frame size."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["get_sinusoid_encoding", "resize_pos_embed"]


def get_sinusoid_encoding(n_position: int, embed_dims: int) -> Tensor:
    """The fixed sine-cosine position table of VideoMAE.

    Entry ``[0, p, j]`` is ``sin(p / 10000**(2*(j//2)/C))`` for even ``j`` and
    the cosine of the same angle for odd ``j`` (computed in float64, returned
    as float32).

    Returns:
        ``[1, n_position, embed_dims]`` float32 tensor.
    """
    dims = torch.arange(embed_dims, dtype=torch.float64)
    inv_freq = torch.pow(10000.0, -(dims - dims % 2) / embed_dims)
    angles = torch.arange(n_position, dtype=torch.float64)[:, None] * inv_freq[None, :]
    table = torch.where(dims.long() % 2 == 0, torch.sin(angles), torch.cos(angles))
    return table.to(torch.float32).unsqueeze(0)


def resize_pos_embed(pos_embed: Tensor, src_grid: Tuple[int, int], dst_grid: Tuple[int, int]) -> Tensor:
    """Resize the spatial part of a ``[1, T*H*W, C]`` position table bicubically.

    The temporal positions are kept; each temporal slice ``[H, W, C]`` is
    resized to ``dst_grid`` (``align_corners=False``), as upstream does when
    the input frame size differs from ``img_size``.

    Args:
        pos_embed: ``[1, T*Hs*Ws, C]``.
        src_grid: ``(Hs, Ws)`` the table was made for.
        dst_grid: ``(Hd, Wd)`` wanted.

    Returns:
        ``[1, T*Hd*Wd, C]`` (the input itself when the grids are equal).

    Raises:
        ValueError: the table length is not a multiple of ``Hs*Ws``.
    """
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    _, n, c = pos_embed.shape
    if n % (src_grid[0] * src_grid[1]) != 0:
        raise ValueError(f"resize_pos_embed: table of {n} positions does not hold whole {src_grid} grids")
    table = pos_embed.reshape(-1, src_grid[0], src_grid[1], c).permute(0, 3, 1, 2)
    table = F.interpolate(table, size=tuple(dst_grid), mode="bicubic", align_corners=False)
    return table.permute(0, 2, 3, 1).reshape(1, -1, c)
