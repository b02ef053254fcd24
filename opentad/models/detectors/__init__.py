"""Detectors (registry ``DETECTORS``)."""
from opentad.models.detectors.base import BaseDetector
from opentad.models.detectors.actionformer import ActionFormer
from opentad.models.detectors.dyfadet import DyFADet
from opentad.models.detectors.tridet import TriDet
from opentad.models.detectors.temporalmaxer import TemporalMaxer
from opentad.models.detectors.mamba import VideoMambaSuite
from opentad.models.detectors.two_stage import TwoStageDetector
from opentad.models.detectors.afsd import AFSD
from opentad.models.detectors.etad import ETAD
from opentad.models.detectors.bmn import BMN
from opentad.models.detectors.gtad import GTAD
from opentad.models.detectors.tsi import TSI
from opentad.models.detectors.vsgn import VSGN

__all__ = ["BaseDetector", "ActionFormer"]
__all__ += ["DyFADet"]
__all__ += ["TriDet"]
__all__ += ["TemporalMaxer"]
__all__ += ["VideoMambaSuite"]
__all__ += ["TwoStageDetector"]
__all__ += ["AFSD"]
__all__ += ["BMN"]
__all__ += ["GTAD", "TSI"]
__all__ += ["VSGN"]
__all__ += ["ETAD"]
