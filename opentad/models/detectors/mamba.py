"""VideoMambaSuite's detector (also CausalTAD's): the pyramid frame with Mamba's parameters in the optimizer."""
from __future__ import annotations

from opentad.models.detectors.pyramid import PyramidDetector
from opentad.registry import DETECTORS

__all__ = ["VideoMambaSuite"]


@DETECTORS.register_module()
class VideoMambaSuite(PyramidDetector):
    """``projection -> neck -> rpn_head`` with no padding of the input (upstream's ``SingleStageDetector`` path).

    Projection e.g. ``MambaProj`` or ``CausalProj``, head e.g. ``ActionFormerHead``. The only
    difference from :class:`PyramidDetector` is the optimizer grouping: Mamba's ``A_log``, ``D``
    (and ViM's ``A_b_log``, ``D_b``) weight-decay, as upstream's
    ``VideoMambaSuite.get_optim_groups`` puts them (its ``forward_embed`` / ``backward_embed`` too).
    """

    decay_suffixes = ("A_log", "D_b", "D", "A_b_log", "forward_embed", "backward_embed")
