"""Checking the egocentric datasets' annotation files (``tools/prepare_data/{ego4d,epic,epic_sounds}/check_data.py``).

:func:`check_annotations` counts bad segments, labels missing from the class
map and missing feature (or video) files; :func:`check_command` is the tools'
command line, with the paths of the feature configs as defaults
(:data:`CHECK_DEFAULTS`). The converters are in :mod:`.convert_ego`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .base.util import load_annotation_database

__all__ = ["AnnotationReport", "check_annotations", "CHECK_DEFAULTS", "check_command"]


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
