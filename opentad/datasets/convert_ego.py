"""Preparing the egocentric datasets: official annotations to upstream OpenTAD's files, and checking them.

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
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .base.util import load_annotation_database

__all__ = [
    "EPIC_KITCHENS_CSVS",
    "EPIC_SOUNDS_CSVS",
    "timestamp_seconds",
    "convert_epic_csvs",
    "write_epic_kitchens_files",
    "write_epic_sounds_files",
    "convert_ego4d_moments",
    "write_annotation_files",
    "AnnotationReport",
    "check_annotations",
    "CHECK_DEFAULTS",
    "check_command",
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


@dataclass
class AnnotationReport:
    """What :func:`check_annotations` found (names in file order)."""

    videos: Dict[str, int] = field(default_factory=dict)
    actions: int = 0
    bad_segments: List[Tuple[str, Any, Any]] = field(default_factory=list)
    unknown_labels: Dict[str, List[str]] = field(default_factory=dict)
    missing_files: List[str] = field(default_factory=list)
    class_map_missing: bool = False

    def lines(self, shown: int = 5) -> List[str]:
        """One line per finding, each with a count and the first ``shown`` offenders."""
        out = [f"{subset}: {n} videos" for subset, n in self.videos.items()] + [f"actions: {self.actions}"]
        if self.class_map_missing:
            out.append("class map: missing; the datasets generate it from the annotations (sorted labels)")
        bad = [f"{video} {segment} (duration {duration})" for video, segment, duration in self.bad_segments]
        out.append("bad segments (end <= start or outside [0, duration], skipped by the datasets): "
                   f"{len(bad)}" + _examples(bad, shown))
        out.append(f"unknown labels: {len(self.unknown_labels)}" + _examples(
            [f"{label!r} in {len(videos)} video(s), e.g. {videos[0]}" for label, videos in self.unknown_labels.items()],
            shown))
        out.append(f"missing files: {len(self.missing_files)}" + _examples(self.missing_files, shown))
        return out


def _examples(items: List[str], shown: int) -> str:
    return f" ({'; '.join(items[:shown])}{' ...' if len(items) > shown else ''})" if items else ""


def check_annotations(ann_file: str, class_map: str, data_path: Optional[str], *, suffix: str = ".npy",
                      prefix: str = "", subsets: Optional[Iterable[str]] = None) -> AnnotationReport:
    """Bad segments, labels missing from ``class_map`` and missing ``data_path/<prefix><video><suffix>`` files.

    Args:
        ann_file: OpenTAD annotation JSON (any layout with ``label`` / ``segment`` annotations).
        class_map: class map file; if missing, labels are not checked (the datasets would generate it).
        data_path: folder of features or videos; None skips the file check.
        suffix, prefix: how a video name becomes a file name.
        subsets: only these subsets (all by default).

    Raises:
        FileNotFoundError / ValueError: ``ann_file`` is missing or malformed (named).
    """
    database = load_annotation_database(ann_file)
    report = AnnotationReport(class_map_missing=not os.path.isfile(class_map))
    known = None
    if not report.class_map_missing:
        with open(class_map, "r", encoding="utf8") as f:
            known = {line.rstrip("\n") for line in f if line.strip()}
    wanted = None if subsets is None else set(subsets)
    for video, info in database.items():
        subset = str(info.get("subset"))
        if wanted is not None and subset not in wanted:
            continue
        report.videos[subset] = report.videos.get(subset, 0) + 1
        for anno in info.get("annotations", []):
            report.actions += 1
            if known is not None and anno.get("label") not in known:
                report.unknown_labels.setdefault(str(anno.get("label")), []).append(video)
            if not _segment_ok(anno.get("segment"), info.get("duration")):
                report.bad_segments.append((video, anno.get("segment"), info.get("duration")))
        if data_path is not None and not os.path.isfile(os.path.join(data_path, f"{prefix}{video}{suffix}")):
            report.missing_files.append(video)
    return report


def _segment_ok(segment: Any, duration: Any) -> bool:
    try:
        return len(segment) == 2 and 0.0 <= float(segment[0]) < float(segment[1]) <= float(duration)
    except (TypeError, ValueError):
        return False


#: ``tools/prepare_data/<name>/check_data.py`` -> (title, annotation file, class map, features, file ending):
#: the paths of the feature configs
CHECK_DEFAULTS = {
    "ego4d": ("Ego4D-MQ", "data/ego4d/annotations/ego4d_v2_220429.json", "data/ego4d/annotations/category_idx.txt",
              "data/ego4d/features/mq_slowfast/", ".npy"),
    "epic": ("EPIC-Kitchens-100", "data/epic_kitchens-100/annotations/epic_kitchens_verb.json",
             "data/epic_kitchens-100/annotations/category_idx_verb.txt",
             "data/epic_kitchens-100/features/slowfast_fps30_stride16_clip32/", ".npy"),
    "epic_sounds": ("EPIC-Sounds", "data/epic_sounds/annotations/epic_sounds.json",
                    "data/epic_sounds/annotations/category_idx.txt",
                    "data/epic_sounds/features/auditory_slowfast_features/", ".npz"),
}


def check_command(argv: Optional[List[str]], dataset: str) -> Tuple[List[str], int]:
    """The ``check_data.py`` command line of ``tools/prepare_data/<dataset>`` (defaults: :data:`CHECK_DEFAULTS`).

    With ``--write-block-list`` the missing videos go to ``<data>/missing_files.txt``
    (the configs' ``block_list``).

    Returns:
        The lines to print (:meth:`AnnotationReport.lines`), and the exit
        status: 1 if a label is unknown, or a file is missing and no block list
        was written; else 0.
    """
    import argparse  # a command line helper: argparse only when used

    title, ann, class_map, data, suffix = CHECK_DEFAULTS[dataset]
    parser = argparse.ArgumentParser(description=f"Check {title} annotations: bad segments, unknown labels, "
                                     "missing feature (or video) files.")
    parser.add_argument("--ann", default=ann, help=f"annotation file (default {ann})")
    parser.add_argument("--class-map", default=class_map, help=f"class map (default {class_map})")
    parser.add_argument("--data", default=data, help=f"folder of features or videos (default {data})")
    parser.add_argument("--suffix", default=suffix, help=f"file ending (default {suffix}; .mp4 for videos)")
    parser.add_argument("--prefix", default="", help="file name prefix")
    parser.add_argument("--subsets", nargs="*", default=None, help="only these subsets (default: all)")
    parser.add_argument("--write-block-list", action="store_true", help="write <data>/missing_files.txt")
    args = parser.parse_args(argv)
    report = check_annotations(args.ann, args.class_map, args.data, suffix=args.suffix, prefix=args.prefix,
                               subsets=args.subsets)
    lines = report.lines()
    if args.write_block_list:
        path = os.path.join(args.data, "missing_files.txt")
        with open(path, "w", encoding="utf8") as f:
            f.writelines(f"{name}\n" for name in report.missing_files)
        lines.append(f"wrote {path}")
    return lines, int(bool(report.unknown_labels) or (bool(report.missing_files) and not args.write_block_list))
