"""EPIC-Kitchens-100 verb / noun / action mAP, with upstream OpenTAD's ``mAP_EPIC`` config keys.

Upstream's EPIC configs evaluate with ``mAP`` on one-task annotation files
(``epic_kitchens_verb.json``: ``label`` is the verb); ``mAP_EPIC`` evaluates
any of the three tasks from the full annotation file that
``tools/prepare_data/epic`` writes. Rules (upstream's, which are the
EPIC-Kitchens action-detection rules, unless marked):

* ``task`` chooses the class. Ground truth: ``verb_label`` / ``noun_label``
  (``"id_012"``, or a plain integer) of each action; predictions: ``verb`` /
  ``noun`` (an integer) or ``action`` (``"verb,noun"``). An action's class is
  ``verb * noun_classes + noun``.
* Ground truth: videos of ``subset`` that are not blocked, and *every*
  action of them: no duplicate removal, and an action with ``end <= start``
  stays a positive that no prediction can match (``mAP`` drops both).
* Classes: the ids present in the ground truth (so every class has
  ground truth: no NaN); ``per_class_AP`` is keyed by the id. A predicted id
  outside them is not evaluated (*here only*: upstream leaves such ids
  unmapped, where they can alias a mapped class index), counted in one warning.
* *Here only:* an id outside ``[0, verb_classes)`` / ``[0, noun_classes)``,
  or a label that is not an id, is an error naming the file, the video and
  the entry (an out-of-range noun would make two actions share a class).
* Matching, AP, ties (equal scores in input order, equal tIoU: the earlier
  ground truth), blocked videos and predictions of videos outside the subset
  (false positives): as :class:`~opentad.evaluations.mAP.mAP`, whose
  vectorised code runs unchanged. ``class_map`` (which the test engine
  passes) is accepted and not used: classes are ids.
"""
from __future__ import annotations

import inspect
import logging
import os
from typing import Any, Literal, Mapping, Optional, Sequence, Union

from opentad.registry import EVALUATORS

from .io import GroundTruth, load_blocked_videos, load_ground_truth
from .predictions_io import load_predictions
from .mAP import mAP

__all__ = ["mAP_EPIC", "label_readers"]

Task = Literal["verb", "noun", "action"]
TASKS = ("verb", "noun", "action")


def _class_id(value: Any, key: str, num_classes: int) -> int:
    """``"id_012"``, ``"12"`` or ``12`` -> 12, checked against ``[0, num_classes)``.

    Raises:
        ValueError: not an id, or out of range (the message names ``key``).
    """
    text = str(value).strip()
    try:
        number = int(text[3:] if text.startswith("id_") else text)
    except ValueError:
        raise ValueError(f"{key} must be a class id such as 'id_012' or 12, got {value!r}") from None
    if not 0 <= number < num_classes:
        raise ValueError(f"{key} {value!r} is outside [0, {num_classes}) (verb_classes / noun_classes)")
    return number


def label_readers(task: str, *, verb_classes: int, noun_classes: int) -> tuple:
    """The class of a ground-truth action and of a prediction under ``task``.

    Returns:
        ``(ground_truth_label, prediction_label)``, two functions of an entry
        dict returning an int class; they raise ``KeyError``/``ValueError``
        on a malformed entry.

    Raises:
        ValueError: ``task`` is not one of ``TASKS``, or a class count is not positive.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    if noun_classes < 1 or verb_classes < 1:
        raise ValueError(f"noun_classes and verb_classes must be positive, got {noun_classes}, {verb_classes}")
    sizes = {"verb": verb_classes, "noun": noun_classes}

    def gt_label(ann: Mapping[str, Any]) -> int:
        if task != "action":
            return _class_id(ann[f"{task}_label"], f"{task}_label", sizes[task])
        verb = _class_id(ann["verb_label"], "verb_label", verb_classes)
        return verb * noun_classes + _class_id(ann["noun_label"], "noun_label", noun_classes)

    def pred_label(item: Mapping[str, Any]) -> int:
        if task != "action":
            return _class_id(item[task], task, sizes[task])
        parts = str(item["action"]).split(",")
        if len(parts) != 2:
            raise ValueError(f"action must be 'verb,noun' class ids, got {item['action']!r}")
        return _class_id(parts[0], "action verb", verb_classes) * noun_classes + _class_id(
            parts[1], "action noun", noun_classes)

    return gt_label, pred_label


@EVALUATORS.register_module()
class mAP_EPIC(mAP):  # noqa: N801 - upstream's registered name
    """EPIC-Kitchens mAP of one task (verb, noun or action) at several tIoU thresholds.

    Args:
        ground_truth_filename: EPIC annotation JSON (``database``; actions with
            ``verb_label`` / ``noun_label``), or the loaded dict.
        prediction_filename: a JSON path or ``{"results": {video: [{"segment": [s, e],
            "verb": v, "noun": n, "action": "v,n", "score": p}]}}`` (the task's key suffices).
        subset: the ``subset`` value of the videos to evaluate, e.g. ``"val"``.
        tiou_thresholds: tIoU thresholds in (0, 1], e.g. ``[0.1, 0.2, 0.3, 0.4, 0.5]``.
        blocked_videos: a JSON file holding a list of video names (or the list).
        thread: accepted for upstream configs; evaluation is single-process.
        task: ``"verb"``, ``"noun"`` or ``"action"``.
        noun_classes, verb_classes: the id ranges (EPIC-Kitchens-100: 300 nouns, 97 verbs).
        class_map: accepted (the test engine passes the dataset's), not used.

    Raises:
        FileNotFoundError: a file named by a key does not exist.
        GroundTruthError: the ground truth is malformed (an action without the
            task's id, an id out of range), or ``subset`` has no action.
        ValueError: bad ``task`` / class counts, malformed predictions (an entry
            without the task's key), thresholds outside (0, 1].
    """

    def __init__(
        self,
        *,
        ground_truth_filename: Union[str, os.PathLike, Mapping[str, Any]],
        prediction_filename: Union[str, os.PathLike, Mapping[str, Any]],
        subset: str,
        tiou_thresholds: Sequence[float],
        blocked_videos: Union[None, str, os.PathLike, Sequence[str]] = None,
        thread: int = 16,
        task: Task = "verb",
        noun_classes: int = 300,
        verb_classes: int = 97,
        class_map: Union[None, str, os.PathLike, Sequence[str]] = None,
    ) -> None:
        label_readers(task, verb_classes=verb_classes, noun_classes=noun_classes)  # checks the keys first
        self.task, self.noun_classes, self.verb_classes = task, int(noun_classes), int(verb_classes)
        super().__init__(
            ground_truth_filename=ground_truth_filename, prediction_filename=prediction_filename, subset=subset,
            tiou_thresholds=tiou_thresholds, blocked_videos=blocked_videos, thread=thread, ignored_labels=(),
        )

    def _load(self, ground_truth_filename, prediction_filename, blocked: set):
        gt_label, pred_label = label_readers(self.task, verb_classes=self.verb_classes, noun_classes=self.noun_classes)
        gt = load_ground_truth(ground_truth_filename, subset=self.subset, blocked=blocked, label_of=gt_label,
                               keep_all=True)
        return gt, load_predictions(prediction_filename, gt=gt, blocked=blocked, label_of=pred_label)

    @classmethod
    def check_ground_truth(cls, **cfg: Any) -> Optional[GroundTruth]:
        """Read and check the ground truth of an ``evaluation`` config without predictions (a run's set-up).

        Args:
            **cfg: the config keys (no ``type``); keys left out take the constructor's defaults.

        Returns:
            The ground truth, or None when ``ground_truth_filename`` or ``subset`` is not set.

        Raises:
            FileNotFoundError, GroundTruthError, ValueError: as the constructor.
        """
        keys = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
        keys.update(cfg)
        if not keys.get("ground_truth_filename") or "subset" not in keys:
            return None
        gt_label, _ = label_readers(keys["task"], verb_classes=keys["verb_classes"], noun_classes=keys["noun_classes"])
        return load_ground_truth(keys["ground_truth_filename"], subset=keys["subset"], label_of=gt_label,
                                 blocked=load_blocked_videos(keys["blocked_videos"]), keep_all=True)

    def logging(self, logger: Optional[logging.Logger] = None) -> None:  # noqa: D401 - upstream name
        """Log ``Evaluating {task} task.`` and then :meth:`mAP.logging`'s table.

        Raises:
            RuntimeError: :meth:`evaluate` has not been called.
        """
        if self.ap is not None:
            (logger if logger is not None else logging.getLogger(__name__)).info("Evaluating %s task.", self.task)
        super().logging(logger)
