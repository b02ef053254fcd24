"""External video-level classifiers: ``post_processing.external_cls`` (upstream OpenTAD's ``CLASSIFIERS``).

Proposal detectors (BMN, GTAD, TSI, ETAD) score class-agnostic segments; a
classifier named in the config gives them class names. Called per video as
``classifier(video_name, segments [N, 2] seconds, scores [N])``, it returns the
segments repeated once per class of the video's top ``topk`` (class ``k``'s
block after class ``k - 1``'s, as upstream), the ``topk * N`` class names and the
combined scores:

================================  ======================================  =======================  ==========
type                              file                                    class scores             combined
================================  ======================================  =======================  ==========
``UntrimmedNetTHUMOSClassifier``  ``.npy`` ``[videos, 101]`` (UCF101)     THUMOS's 20 columns      ``p * s``
``CUHKANETClassifier``            JSON ``results: {video: [K]}``          as stored                ``p * s``
``TCANetHACSClassifier``          JSON ``results: {video: [[K]]}``        ``2 * softmax``          ``p * s``
``StandardClassifier``            JSON ``results: {video: [K]}``          as stored or softmax     ``sqrt(p * s)``
``PseudoClassifier``              none                                    one fixed label          ``p``
================================  ======================================  =======================  ==========

JSON files also hold ``"class"`` (or ``"classes"``): the ``K`` class names in
score order. Files are read once, at construction, and checked whole: a
missing file, unreadable content, a wrong layout, non-finite scores or a
``topk`` above the class count is an error naming the file and what is
expected (:mod:`.classifier_files`). ``.npy`` files are read with
``allow_pickle=False``. docs/postprocessing.md describes the layouts and
which configs use them.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from opentad.models.utils.post_processing.classifier_files import ClassifierFileError, finite_vector, read_json
from opentad.registry import CLASSIFIERS, ConfigError, build

__all__ = [
    "ClassifierFileError",
    "build_classifier",
    "VideoClassifier",
    "UntrimmedNetTHUMOSClassifier",
    "CUHKANETClassifier",
    "TCANetHACSClassifier",
    "StandardClassifier",
    "PseudoClassifier",
    "THUMOS_UCF101_IDS",
]

logger = logging.getLogger(__name__)

#: THUMOS14's 20 classes by their 1-based UCF101 class id (the columns UntrimmedNet's scores use).
THUMOS_UCF101_IDS: Dict[int, str] = {
    7: "BaseballPitch", 9: "BasketballDunk", 12: "Billiards", 21: "CleanAndJerk", 22: "CliffDiving",
    23: "CricketBowling", 24: "CricketShot", 26: "Diving", 31: "FrisbeeCatch", 33: "GolfSwing",
    36: "HammerThrow", 40: "HighJump", 45: "JavelinThrow", 51: "LongJump", 68: "PoleVault",
    79: "Shotput", 85: "SoccerPenalty", 92: "TennisSwing", 93: "ThrowDiscus", 97: "VolleyballSpiking",
}


def build_classifier(cfg: Optional[Mapping[str, Any]]) -> Optional["VideoClassifier"]:
    """The classifier of ``post_processing.external_cls`` (None gives None).

    Raises:
        ConfigError: unknown type or keys, or ``topk`` out of range.
        FileNotFoundError, ClassifierFileError: the score file is missing or unusable.
    """
    return build(cfg, CLASSIFIERS)


class VideoClassifier:
    """Base of the file-based classifiers: the top ``topk`` classes of a video re-label its segments.

    A subclass reads its file into :attr:`class_names` and :meth:`video_scores`,
    and may override :meth:`rank` (upstream's ordering, ties included) and
    :meth:`combine`.

    Args:
        path: the score file.
        topk: how many of the video's best classes each segment is repeated with.

    Raises:
        ConfigError: ``topk`` below 1 or above the number of classes of the file.
    """

    def __init__(self, *, path: str, topk: int = 1):
        self.path, self.topk = path, topk
        self.class_names: List[str] = []

    def _check_topk(self) -> None:
        if not 1 <= self.topk <= len(self.class_names):
            raise ConfigError(
                f"post_processing.external_cls.topk={self.topk}: {self.path} has {len(self.class_names)} classes; "
                f"topk must be between 1 and {len(self.class_names)}"
            )

    def video_scores(self, video_name: str) -> np.ndarray:
        """Hook: the video's class scores ``[K]`` in :attr:`class_names` order (float64)."""
        raise NotImplementedError

    def rank(self, scores: np.ndarray) -> np.ndarray:
        """Hook: class indices, best first (here ``argsort(-scores)``, as CUHK / TCANet upstream)."""
        return np.argsort(-scores)

    def combine(self, scores: torch.Tensor, class_score: float) -> torch.Tensor:
        """Hook: a segment's score with class score ``class_score`` (here their product)."""
        return scores * class_score

    def __call__(
        self, video_name: str, segments: torch.Tensor, scores: torch.Tensor
    ) -> Tuple[torch.Tensor, List[str], torch.Tensor]:
        """Re-label one video's segments ``[N, 2]`` with scores ``[N]``.

        Returns:
            ``(segments [topk * N, 2], topk * N class names, scores [topk * N])``.

        Raises:
            ValueError: ``segments`` and ``scores`` differ in length.
            ClassifierFileError: the file has no scores for ``video_name``.
        """
        if len(segments) != len(scores):
            raise ValueError(f"{type(self).__name__}: {len(segments)} segments but {len(scores)} scores")
        class_scores = self.video_scores(video_name)
        best = self.rank(class_scores)[: self.topk]
        labels = [self.class_names[int(k)] for k in best for _ in range(len(segments))]
        new_scores = [self.combine(scores, float(class_scores[k])) for k in best]
        return torch.cat([segments] * len(best)), labels, torch.cat(new_scores)


class _JSONClassifier(VideoClassifier):
    """``{"results": {video: scores}, "class" (or "classes"): [K names]}`` read whole at construction."""

    #: how a video's entry holds its ``K`` scores, for messages
    entry_layout = "[K numbers]"

    def __init__(self, *, path: str, topk: int = 1):
        super().__init__(path=path, topk=topk)
        expected = f'{{"results": {{video: {self.entry_layout}}}, "class": [K class names]}}'
        data = read_json(path, expected)
        names = None
        if isinstance(data, dict):
            names = data.get("class", data.get("classes"))
        if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or not isinstance(names, list):
            raise ClassifierFileError(f"{path}: wrong layout; expected {expected}")
        if not names or not all(isinstance(n, str) for n in names):
            raise ClassifierFileError(f"{path}: 'class' must be a non-empty list of class names, got {names!r:.80}")
        self.class_names = list(names)
        self._check_topk()
        self._scores = {
            video: self.entry_scores(entry, f"{path}: results[{video!r}]") for video, entry in data["results"].items()
        }

    def entry_scores(self, entry: Any, where: str) -> np.ndarray:
        """Hook: one video's entry as class scores ``[K]`` (here the entry itself)."""
        return finite_vector(entry, len(self.class_names), where)

    def video_scores(self, video_name: str) -> np.ndarray:
        if video_name not in self._scores:
            example = next(iter(self._scores), None)
            raise ClassifierFileError(
                f"{self.path} has no scores for video {video_name!r} ({len(self._scores)} videos, e.g. {example!r}); "
                "expected the test set's video names as keys of 'results'"
            )
        return self._scores[video_name]


@CLASSIFIERS.register_module()
class CUHKANETClassifier(_JSONClassifier):
    """ActivityNet's CUHK video classification (``cuhk_val_simp_7.json``): segment score times class score."""


@CLASSIFIERS.register_module()
class TCANetHACSClassifier(_JSONClassifier):
    """HACS's TCANet classification: each entry nests the logits, ``[[K]]``; class score ``2 * softmax``."""

    entry_layout = "[[K numbers]]"

    def entry_scores(self, entry: Any, where: str) -> np.ndarray:
        if not isinstance(entry, list) or not entry:
            raise ClassifierFileError(f"{where}: expected {self.entry_layout}, got {entry!r:.80}")
        logits = finite_vector(entry[0], len(self.class_names), f"{where}[0]")
        return np.exp(logits) / np.sum(np.exp(logits)) * 2.0


@CLASSIFIERS.register_module()
class StandardClassifier(_JSONClassifier):
    """Scores as stored (or their softmax); combined as ``sqrt(p * s)``; ranked by ``argsort(s)`` reversed.

    Args:
        path: the JSON score file.
        topk: classes per segment.
        apply_softmax: replace each video's scores by their softmax.
    """

    def __init__(self, *, path: str, topk: int = 1, apply_softmax: bool = False):
        self.apply_softmax = apply_softmax
        super().__init__(path=path, topk=topk)

    def entry_scores(self, entry: Any, where: str) -> np.ndarray:
        scores = super().entry_scores(entry, where)
        return np.exp(scores) / np.sum(np.exp(scores)) if self.apply_softmax else scores

    def rank(self, scores: np.ndarray) -> np.ndarray:
        return np.argsort(scores)[::-1]

    def combine(self, scores: torch.Tensor, class_score: float) -> torch.Tensor:
        return torch.sqrt(scores * class_score)


@CLASSIFIERS.register_module()
class UntrimmedNetTHUMOSClassifier(VideoClassifier):
    """THUMOS14's UntrimmedNet scores (``uNet_test.npy``): an array ``[videos, 101]`` over UCF101's classes.

    Row ``i - 1`` holds video ``..._i`` (the last 4 characters of the name, as
    upstream); of its columns, the 20 THUMOS classes (:data:`THUMOS_UCF101_IDS`)
    are ranked by score, ties to the higher class id. Segment score times class score.

    Raises:
        FileNotFoundError: no such file.
        ClassifierFileError: not a numeric ``.npy`` array ``[videos, >= 97]`` of finite numbers.
    """

    def __init__(self, *, path: str, topk: int = 1):
        super().__init__(path=path, topk=topk)
        expected = "a numeric .npy array [videos, 101] of UCF101 class scores, row i - 1 for video ..._i"
        if not os.path.isfile(path):
            raise FileNotFoundError(f"External classifier file not found: {path} (expected {expected})")
        try:
            table = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ClassifierFileError(f"{path}: unreadable ({exc}); expected {expected}") from exc
        columns = max(THUMOS_UCF101_IDS)
        if not isinstance(table, np.ndarray) or table.ndim != 2 or table.shape[1] < columns:
            raise ClassifierFileError(f"{path}: shape {getattr(table, 'shape', None)}; expected {expected}")
        if table.dtype.kind not in "fiu":
            raise ClassifierFileError(f"{path}: dtype {table.dtype}; expected {expected}")
        if not np.isfinite(table).all():
            raise ClassifierFileError(f"{path}: non-finite values; expected {expected}")
        self._table = table[:, [i - 1 for i in THUMOS_UCF101_IDS]]
        self.class_names = list(THUMOS_UCF101_IDS.values())
        self._check_topk()

    def video_scores(self, video_name: str) -> np.ndarray:
        number = video_name[-4:]
        if not number.isdigit() or not 1 <= int(number) <= len(self._table):
            raise ClassifierFileError(
                f"{self.path} has no row for video {video_name!r}: its last 4 characters must be a number "
                f"between 1 and {len(self._table)} (the file's rows)"
            )
        return self._table[int(number) - 1]

    def rank(self, scores: np.ndarray) -> np.ndarray:
        return np.array(sorted(range(len(scores)), key=lambda i: (scores[i], i), reverse=True))


@CLASSIFIERS.register_module()
class PseudoClassifier:
    """One fixed label for every segment, scores unchanged (class-agnostic proposals, e.g. for recall).

    Args:
        pseudo_label: the label.
    """

    def __init__(self, *, pseudo_label: str = ""):
        self.pseudo_label = pseudo_label

    def __call__(
        self, video_name: str, segments: torch.Tensor, scores: torch.Tensor
    ) -> Tuple[torch.Tensor, List[str], torch.Tensor]:
        """``(segments [N, 2], N times pseudo_label, scores [N])``.

        Raises:
            ValueError: ``segments`` and ``scores`` differ in length.
        """
        if len(segments) != len(scores):
            raise ValueError(f"PseudoClassifier: {len(segments)} segments but {len(scores)} scores")
        return segments, [self.pseudo_label] * len(segments), scores
