"""Detectors (registry ``DETECTORS``)."""
from opentad.models.detectors.base import BaseDetector
from opentad.models.detectors.actionformer import ActionFormer
from opentad.models.detectors.dyfadet import DyFADet
from opentad.models.detectors.tridet import TriDet
from opentad.models.detectors.temporalmaxer import TemporalMaxer
from opentad.models.detectors.mamba import VideoMambaSuite
from opentad.models.detectors.two_stage import TwoStageDetector

__all__ = ["BaseDetector", "ActionFormer"]
__all__ += ["DyFADet"]
__all__ += ["TriDet"]
__all__ += ["TemporalMaxer"]
__all__ += ["VideoMambaSuite"]
__all__ += ["TwoStageDetector"]
