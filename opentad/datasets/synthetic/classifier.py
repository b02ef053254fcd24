"""Video-level class scores of the synthetic videos, in ``StandardClassifier``'s file layout.

Proposal detectors (BMN, GTAD, TSI, ETAD) take their class names from an
external video classifier (``post_processing.external_cls``). The generator
writes ``classifiers/video_classifier.json``::

    {"class": [K class names], "results": {video_name: [K scores], ...}}

for every video of both subsets. A video's score of class ``k`` comes from its
ground truth (``Ambiguous`` segments excluded) and its own random stream
``(seed, CLASSIFIER, subset, index)``, with ``u_k ~ U(0, 0.1)``::

    present class (some action of class k):  0.6 + 0.3 * share_k + u_k    in [0.6, 1.0)
    absent class:                             2 * u_k                      in [0, 0.2)

``share_k`` is class ``k``'s fraction of the video's action time, so the
present classes rank first, the dominant one usually on top. Scores are
rounded to 4 decimals; element-wise arithmetic only, the same on every CPU.
With ``classes_per_video=1`` a class-agnostic detector plus this classifier
(``topk=2``) can label every action correctly.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

from opentad.datasets.synthetic.plan import SUBSETS, Stream, VideoPlan, video_rng
from opentad.datasets.synthetic.settings import SyntheticSettings

__all__ = ["PRESENT_FLOOR", "ABSENT_CEILING", "video_class_scores", "classifier_file"]

#: every present class scores at least this
PRESENT_FLOOR = 0.6
#: every absent class scores below this
ABSENT_CEILING = 0.2


def video_class_scores(plan: VideoPlan, settings: SyntheticSettings) -> List[float]:
    """The video's ``num_classes`` class scores, following the module docstring.

    Args:
        plan: the video's plan.
        settings: dataset settings (``seed``, ``num_classes``).

    Returns:
        ``[num_classes]`` floats rounded to 4 decimals.
    """
    rng = video_rng(settings.seed, Stream.CLASSIFIER, SUBSETS[plan.subset][0], plan.index)
    noise = rng.uniform(0.0, 0.1, size=settings.num_classes)
    action_cs = np.zeros(settings.num_classes)
    for seg in plan.segments:
        if not seg.ambiguous:
            action_cs[seg.label] += seg.end_cs - seg.start_cs
    share = action_cs / max(action_cs.sum(), 1.0)
    scores = np.where(action_cs > 0, PRESENT_FLOOR + 0.3 * share + noise, 2.0 * noise)
    return [round(float(v), 4) for v in scores]


def classifier_file(plans: Sequence[VideoPlan], settings: SyntheticSettings) -> Dict[str, Any]:
    """The body of ``classifiers/video_classifier.json`` for ``plans``: ``{"class": [...], "results": {...}}``."""
    return {
        "class": list(settings.class_names),
        "results": {plan.name: video_class_scores(plan, settings) for plan in plans},
    }
