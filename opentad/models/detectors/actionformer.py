"""ActionFormer (Zhang et al., ECCV 2022) as a :class:`PyramidDetector`."""
from __future__ import annotations

from typing import List

from opentad.models.detectors.pyramid import PyramidDetector
from opentad.registry import DETECTORS

__all__ = ["ActionFormer"]


@DETECTORS.register_module()
class ActionFormer(PyramidDetector):
    """Feature pyramid from a local-attention transformer, anchor-free head.

    Before the projection, features are zero-padded (mask False) to
    ``max_seq_len``, or, when longer, to the next multiple of the largest
    ``stride * 2 * (window // 2)`` over the pyramid levels (windows
    ``projection.mha_win_size``), so every level splits evenly into attention windows.

    Args:
        projection: a projection with ``max_seq_len`` and ``mha_win_size`` (e.g. ``Conv1DTransformerProj``).
        rpn_head: a head whose ``prior_generator`` has ``strides``.
        neck, backbone: optional.

    Raises:
        ValueError: ``max_seq_len`` is not a multiple of some level's
            ``stride * 2 * (window // 2)``, or window sizes and strides disagree in number.
    """

    window_attr = "mha_win_size"

    @property
    def mha_win_size(self) -> List[int]:
        """The projection's attention window per level."""
        return list(self.projection.mha_win_size)

    def level_divisor(self, stride: int, window: int) -> int:
        """``stride * 2 * (window // 2)`` (``stride`` for window 1), which must divide ``max_seq_len``."""
        factor = stride * (window // 2) * 2 if window > 1 else stride
        if self.max_seq_len % factor != 0:
            raise ValueError(
                f"ActionFormer: projection.max_seq_len={self.max_seq_len} must be divisible by "
                f"stride * 2 * (window // 2) = {factor} (stride {stride}, window {window})"
            )
        return factor
