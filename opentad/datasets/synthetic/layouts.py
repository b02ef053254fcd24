"""The synthetic dataset rewritten in the EPIC-Kitchens-100 and Ego4D-MQ annotation layouts.

:func:`generate_dataset` writes the THUMOS layout
(``annotations/thumos_14_anno.json``); the functions here read it and write,
next to it, the files upstream OpenTAD's EPIC and Ego4D configs read, so the
same features (``features/stride4``) train the EPIC and Ego4D dataset
classes. Both layouts rename the subsets ``validation -> train`` and
``test -> val`` (the names of the real files) and drop ``Ambiguous``
segments (neither dataset has such a label).

EPIC (:func:`write_epic_layout`): synthetic class ``k`` is the action
(verb ``k // 2``, noun ``k % 3``) -- distinct pairs, so verbs and nouns are
two coarser labelings of the same actions. Files (as
``tools/prepare_data/epic/convert_epic_kitchens_anno.py`` writes them)::

    annotations/epic_kitchens_full.json   segment, verb_label "id_001", verb_label_name, noun_label, noun_label_name
    annotations/epic_kitchens_verb.json   segment, label (the verb id), label_name
    annotations/epic_kitchens_noun.json   segment, label (the noun id), label_name
    annotations/category_idx_verb.txt     the verb ids present, sorted
    annotations/category_idx_noun.txt     the noun ids present, sorted

Videos carry ``subset`` and ``duration`` only (EPIC configs set ``fps=30``,
the synthetic frame rate). Ego4D (:func:`write_ego4d_layout`):
``annotations/ego4d_v2_220429.json`` with ``subset``, ``duration``,
``frame`` and ``annotations`` (``label``: the synthetic class name); the
class map is the generator's ``annotations/category_idx.txt``.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional

from opentad.datasets.synthetic.generate import ANNOTATION_FILE, GenerationReport, generate_dataset
from opentad.datasets.synthetic.patterns import AMBIGUOUS_LABEL
from opentad.datasets.synthetic.settings import settings_from_preset
from opentad.datasets.synthetic.writer import write_text

__all__ = [
    "SUBSET_NAMES",
    "EPIC_FILES",
    "EGO4D_FILE",
    "verb_noun",
    "write_epic_layout",
    "write_ego4d_layout",
    "LAYOUTS",
    "generate_layout",
]

#: generator subset -> the subset name of the EPIC and Ego4D files
SUBSET_NAMES: Dict[str, str] = {"validation": "train", "test": "val"}
EPIC_FILES = {
    "full": "annotations/epic_kitchens_full.json",
    "verb": "annotations/epic_kitchens_verb.json",
    "noun": "annotations/epic_kitchens_noun.json",
    "verb_map": "annotations/category_idx_verb.txt",
    "noun_map": "annotations/category_idx_noun.txt",
}
EGO4D_FILE = "annotations/ego4d_v2_220429.json"


def verb_noun(class_index: int) -> tuple:
    """``(verb, noun)`` ids of synthetic class ``class_index``: ``(k // 2, k % 3)``, distinct for distinct ``k``."""
    return class_index // 2, class_index % 3


def _read_thumos_layout(root: str) -> Dict[str, Dict[str, Any]]:
    with open(os.path.join(root, ANNOTATION_FILE), "r", encoding="utf8") as f:
        return json.load(f)["database"]


def _class_names(root: str) -> List[str]:
    with open(os.path.join(root, "annotations", "category_idx.txt"), "r", encoding="utf8") as f:
        return [line.strip() for line in f if line.strip()]


def _write_json(root: str, name: str, database: Mapping[str, Any], version: str) -> None:
    write_text(os.path.join(root, name), json.dumps({"version": version, "database": database}, indent=1) + "\n")


def _converted(root: str, annotation: Callable[[Dict[str, Any]], Dict[str, Any]], keep_frame: bool) -> Dict[str, Any]:
    """The THUMOS-layout database with subsets renamed, ``Ambiguous`` dropped and ``annotation`` applied."""
    database = {}
    for name, info in _read_thumos_layout(root).items():
        entry = {"subset": SUBSET_NAMES[info["subset"]], "duration": info["duration"]}
        if keep_frame:
            entry["frame"] = info["frame"]
        entry["annotations"] = [annotation(a) for a in info["annotations"] if a["label"] != AMBIGUOUS_LABEL]
        database[name] = entry
    return database


def write_epic_layout(root: str) -> Dict[str, str]:
    """Write the EPIC-Kitchens files of the module docstring under ``root`` (a generated synthetic dataset).

    Returns:
        The written paths, keyed as :data:`EPIC_FILES`.

    Raises:
        FileNotFoundError: ``root`` holds no generated annotation file or class map.
    """
    index = {name: k for k, name in enumerate(_class_names(root))}

    def full(anno: Dict[str, Any]) -> Dict[str, Any]:
        verb, noun = verb_noun(index[anno["label"]])
        return dict(segment=anno["segment"], verb_label=f"id_{verb:03d}", verb_label_name=f"verb{verb}",
                    noun_label=f"id_{noun:03d}", noun_label_name=f"noun{noun}")

    database = _converted(root, full, keep_frame=False)
    _write_json(root, EPIC_FILES["full"], database, "synthetic-epic-kitchens")
    for task in ("verb", "noun"):
        one_task = {
            name: dict(info, annotations=[
                dict(segment=a["segment"], label=a[f"{task}_label"], label_name=a[f"{task}_label_name"])
                for a in info["annotations"]])
            for name, info in database.items()
        }
        _write_json(root, EPIC_FILES[task], one_task, f"synthetic-epic-kitchens-{task}")
        ids = sorted({a["label"] for info in one_task.values() for a in info["annotations"]})
        write_text(os.path.join(root, EPIC_FILES[f"{task}_map"]), "".join(f"{i}\n" for i in ids))
    return {key: os.path.join(root, path) for key, path in EPIC_FILES.items()}


def write_ego4d_layout(root: str) -> Dict[str, str]:
    """Write ``annotations/ego4d_v2_220429.json`` under ``root`` (a generated synthetic dataset).

    Returns:
        ``{"annotations": path, "class_map": path}``.

    Raises:
        FileNotFoundError: ``root`` holds no generated annotation file.
    """
    database = _converted(root, lambda a: dict(segment=a["segment"], label=a["label"]), keep_frame=True)
    _write_json(root, EGO4D_FILE, database, "synthetic-ego4d-mq")
    return {"annotations": os.path.join(root, EGO4D_FILE),
            "class_map": os.path.join(root, "annotations", "category_idx.txt")}


#: layout name -> writer; the presets of the same name have the matching shape
LAYOUTS: Dict[str, Callable[[str], Dict[str, str]]] = {"epic": write_epic_layout, "ego4d": write_ego4d_layout}


def generate_layout(layout: str, out: str, overrides: Optional[Mapping[str, Any]] = None,
                    **generate_kwargs: Any) -> GenerationReport:
    """Generate preset ``layout`` (with ``overrides``) into ``out`` and write its layout's files.

    Args:
        layout: ``"epic"`` or ``"ego4d"`` (the preset and the layout).
        out: the dataset folder.
        overrides: settings fields to replace (e.g. fewer, shorter videos).
        **generate_kwargs: passed to :func:`generate_dataset` (``workers``, ``force``).

    Raises:
        KeyError: unknown layout (the message lists them).
    """
    if layout not in LAYOUTS:
        raise KeyError(f"Unknown synthetic layout {layout!r}; choose one of {sorted(LAYOUTS)}.")
    report = generate_dataset(settings_from_preset(layout, overrides), out, **generate_kwargs)
    LAYOUTS[layout](out)
    return report
