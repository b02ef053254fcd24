"""Preparing the egocentric datasets: official annotations to upstream OpenTAD's files (the check: :mod:`.check_ego`).

* EPIC-Kitchens-100 (``EPIC_100_train.csv``, ``EPIC_100_validation.csv``,
  ``EPIC_100_test_timestamps.csv``, ``EPIC_100_video_info.csv``) ->
  ``epic_kitchens_full.json`` (``verb_label`` / ``noun_label`` ``"id_012"``
  and their names), ``epic_kitchens_verb.json`` / ``epic_kitchens_noun.json``
  (``label`` the task's id) and the class maps ``category_idx_{verb,noun}.txt``.
* EPIC-Sounds (``EPIC_Sounds_train.csv``, ``EPIC_Sounds_validation.csv``,
  ``EPIC_Sounds_detection_test_videos.csv``, ``EPIC_100_video_info.csv``) ->
  ``epic_sounds.json`` (``label`` the sound class id) and ``category_idx.txt``.
* Ego4D-MQ (``moments_train.json``, ``moments_val.json``,
  ``moments_test_unannotated.json``) -> ``ego4d_v2_220429.json`` (one entry per
  clip: ``duration``, ``frame``, ``subset``, the primary moments of every
  annotator) and ``category_idx.txt``.

Rules are upstream's converters' (``tools/prepare_data/{epic,epic_sounds,ego4d}``):
timestamps ``HH:MM:SS.ff`` become seconds rounded to 2 decimals (Ego4D:
seconds from the clip start rounded to 4); a subset's videos in order of
first appearance; ``test`` videos get no ``annotations``; an Ego4D clip whose
frame rate is outside [10, 100] fps, or without moments, is left out. Class
maps list the labels present, sorted (what the datasets would generate).
Here only: a video missing from ``EPIC_100_video_info.csv`` is an error naming
the video and the file (upstream: ``IndexError``); the Ego4D clips left out are
counted, not printed one by one.
"""
from __future__ import annotations

import csv
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

__all__ = [
    "EPIC_KITCHENS_CSVS",
    "EPIC_SOUNDS_CSVS",
    "timestamp_seconds",
    "convert_epic_csvs",
    "write_epic_kitchens_files",
    "write_epic_sounds_files",
    "convert_ego4d_moments",
    "write_annotation_files",
]

#: subset -> official CSV (EPIC-Kitchens-100); the durations come from ``EPIC_100_video_info.csv``
EPIC_KITCHENS_CSVS = {"train": "EPIC_100_train.csv", "val": "EPIC_100_validation.csv",
                      "test": "EPIC_100_test_timestamps.csv"}
EPIC_SOUNDS_CSVS = {"train": "EPIC_Sounds_train.csv", "val": "EPIC_Sounds_validation.csv",
                    "test": "EPIC_Sounds_detection_test_videos.csv"}
_VIDEO_INFO = "EPIC_100_video_info.csv"
_EGO4D_JSONS = {"train": "moments_train.json", "val": "moments_val.json", "test": "moments_test_unannotated.json"}


def timestamp_seconds(text: str) -> float:
    """``"HH:MM:SS.ff"`` -> seconds.

    Raises:
        ValueError: not three ``:``-separated numbers.
    """
    parts = str(text).split(":")
    if len(parts) != 3:
        raise ValueError(f"timestamp {text!r} is not HH:MM:SS.ff")
    hours, minutes, seconds = (float(p) for p in parts)
    return hours * 3600 + minutes * 60 + seconds


def _read_csv(path: str) -> List[Dict[str, str]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Annotation CSV not found: {path}")
    with open(path, "r", encoding="utf8", newline="") as f:
        return list(csv.DictReader(f))


def _row_value(row: Mapping[str, str], key: str, path: str, line: int) -> str:
    if key not in row or row[key] is None:
        raise ValueError(f"{path} line {line}: no {key!r} column (columns: {sorted(k for k in row if k)})")
    return row[key]


def convert_epic_csvs(csv_dir: str, *, sounds: bool = False) -> Dict[str, Dict[str, Any]]:
    """The full EPIC ``database`` from the official CSVs in ``csv_dir``.

    Args:
        csv_dir: folder of the CSVs named by :data:`EPIC_KITCHENS_CSVS` (or
            :data:`EPIC_SOUNDS_CSVS` with ``sounds``) and ``EPIC_100_video_info.csv``.
        sounds: EPIC-Sounds: one ``label`` (``class_id``) per action instead of verb and noun.

    Returns:
        ``{video_id: {"subset", "duration", "annotations"?}}``; annotations are
        ``{"segment", "verb_label", "verb_label_name", "noun_label", "noun_label_name"}``
        or, with ``sounds``, ``{"segment", "label"}``.

    Raises:
        FileNotFoundError: a CSV is missing. ValueError: a column is missing, a
            timestamp or class id is malformed, or a video has no duration (each names the file and line).
    """
    info_path = os.path.join(csv_dir, _VIDEO_INFO)
    durations = {row["video_id"]: float(row["duration"]) for row in _read_csv(info_path)}
    database: Dict[str, Dict[str, Any]] = {}
    for subset, name in (EPIC_SOUNDS_CSVS if sounds else EPIC_KITCHENS_CSVS).items():
        path = os.path.join(csv_dir, name)
        for line, row in enumerate(_read_csv(path), start=2):
            video = _row_value(row, "video_id", path, line)
            if video not in durations:
                raise ValueError(f"{path} line {line}: video {video} is not in {info_path}")
            entry = database.setdefault(video, {"subset": subset, "duration": durations[video]})
            if subset == "test":
                continue
            try:
                entry.setdefault("annotations", []).append(_epic_action(row, path, line, sounds))
            except ValueError as exc:
                raise ValueError(f"{path} line {line} (video {video}): {exc}") from exc
    return database


def _epic_action(row: Mapping[str, str], path: str, line: int, sounds: bool) -> Dict[str, Any]:
    start = timestamp_seconds(_row_value(row, "start_timestamp", path, line))
    end = timestamp_seconds(_row_value(row, "stop_timestamp", path, line))
    action: Dict[str, Any] = {"segment": [round(start, 2), round(end, 2)]}
    if sounds:
        action["label"] = f"id_{int(_row_value(row, 'class_id', path, line)):03d}"
        return action
    for task in ("verb", "noun"):
        action[f"{task}_label"] = f"id_{int(_row_value(row, f'{task}_class', path, line)):03d}"
        action[f"{task}_label_name"] = _row_value(row, task, path, line)
    return action


def write_annotation_files(out_dir: str, name: str, database: Mapping[str, Any], version: str,
                           class_map: Optional[str] = None, **extra: Any) -> str:
    """Write ``{"version", **extra, "database"}`` to ``out_dir/name`` (and the sorted labels to ``class_map``)."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    with open(path, "w", encoding="utf8") as f:
        json.dump({"version": version, **extra, "database": database}, f)
    if class_map is not None:
        labels = sorted({a["label"] for v in database.values() for a in v.get("annotations", [])})
        with open(os.path.join(out_dir, class_map), "w", encoding="utf8") as f:
            f.writelines(f"{label}\n" for label in labels)
    return path


def write_epic_kitchens_files(database: Mapping[str, Mapping[str, Any]], out_dir: str) -> List[str]:
    """Write the full, verb and noun files and the two class maps (upstream's names) into ``out_dir``."""
    paths = [write_annotation_files(out_dir, "epic_kitchens_full.json", database, "epic-kitchens-100")]
    for task in ("verb", "noun"):
        one_task = {}
        for video, info in database.items():
            one_task[video] = {"subset": info["subset"], "duration": info["duration"]}
            if "annotations" in info:
                one_task[video]["annotations"] = [
                    {"segment": a["segment"], "label": a[f"{task}_label"], "label_name": a[f"{task}_label_name"]}
                    for a in info["annotations"]]
        paths.append(write_annotation_files(out_dir, f"epic_kitchens_{task}.json", one_task,
                                            f"epic-kitchens-100-{task}", f"category_idx_{task}.txt"))
    return paths


def write_epic_sounds_files(database: Mapping[str, Mapping[str, Any]], out_dir: str) -> List[str]:
    """Write ``epic_sounds.json`` (the name the EPIC-Sounds config reads) and ``category_idx.txt``."""
    return [write_annotation_files(out_dir, "epic_sounds.json", database, "epic-sounds", "category_idx.txt")]


def convert_ego4d_moments(data_dir: str) -> Tuple[Dict[str, Dict[str, Any]], Dict[str, Any], Dict[str, int]]:
    """The Ego4D-MQ ``database`` from the official moments files in ``data_dir``.

    Returns:
        ``(database, header, skipped)``: the clips, ``{"version", "date"}`` of the
        training file, and the number of clips left out per reason
        (``"abnormal fps"``: outside [10, 100] or no duration; ``"no moment"``).

    Raises:
        FileNotFoundError / ValueError: a file is missing, not JSON, or lacks a field (named with the clip).
    """
    database: Dict[str, Dict[str, Any]] = {}
    skipped = {"abnormal fps": 0, "no moment": 0}
    header: Dict[str, Any] = {}
    for name in _EGO4D_JSONS.values():
        path = os.path.join(data_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Ego4D moments file not found: {path}")
        with open(path, "r", encoding="utf8") as f:
            content = json.load(f)
        header = header or {"version": content.get("version"), "date": content.get("date")}
        for video in content["videos"]:
            for clip in video["clips"]:
                try:
                    entry = _ego4d_clip(video["split"], clip)
                except (KeyError, TypeError, ValueError) as exc:
                    raise ValueError(f"{path}: clip {clip.get('clip_uid')!r}: {type(exc).__name__}: {exc}") from exc
                if isinstance(entry, str):
                    skipped[entry] += 1
                else:
                    database[clip["clip_uid"]] = entry
    return database, header, skipped


def _ego4d_clip(subset: str, clip: Mapping[str, Any]) -> Any:
    """One clip's entry, or the reason it is left out."""
    first_frame, last_frame = max(int(clip["video_start_frame"]), 0), int(clip["video_end_frame"])
    start = max(float(clip["video_start_sec"]), 0.0)
    duration = round(float(clip["video_end_sec"]) - start, 4)
    frames = last_frame - first_frame
    if duration <= 0 or not 10 <= frames / duration <= 100:
        return "abnormal fps"
    entry: Dict[str, Any] = {"duration": duration, "frame": frames, "subset": subset}
    if subset == "test":
        return entry
    moments = [{"segment": [round(item["video_start_time"] - start, 4), round(item["video_end_time"] - start, 4)],
                "label": item["label"]}
               for annotator in clip["annotations"] for item in annotator["labels"] if item["primary"]]
    if not moments:
        return "no moment"
    entry["annotations"] = moments
    return entry
