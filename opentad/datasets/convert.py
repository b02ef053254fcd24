"""Preparing THUMOS14 annotations: ActionFormer's layout to OpenTAD's, and checking that data is complete.

ActionFormer's ``thumos14.json``::

    {"version": ..., "database": {video_name: {
        "subset": "Validation" | "Test", "duration": seconds, "fps": frames per second,
        "annotations": [{"label", "segment": [s, e], "segment(frames)": [fs, fe], "label_id"}]}}}

OpenTAD's ``thumos_14_anno.json``::

    {"database": {video_name: {
        "subset": "training" | "validation", "duration": seconds, "frame": frames,
        "annotations": [{"label", "segment": [s, e]}]}}}

``frame`` is ``round(duration * fps)``: ActionFormer's file has no frame
count, and its ``duration`` and ``fps`` are the video's. A decoder may count
a frame or two more or less; the datasets only use ``frame / duration``
(the rate segments in seconds are turned into frames with) and the number of
snippets, so such a difference moves ground truth by less than a frame.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .base.util import load_annotation_database

__all__ = [
    "DEFAULT_SUBSET_MAP",
    "UPSTREAM_REMOVED_VIDEOS",
    "convert_actionformer_database",
    "convert_actionformer_file",
    "find_missing_files",
]

#: ActionFormer subset -> OpenTAD subset, as in OpenTAD's published file and its configs.
DEFAULT_SUBSET_MAP: Dict[str, str] = {"Validation": "training", "Test": "validation"}

#: test videos upstream leaves out: 0000270 (wrong annotations) and 0001292 (only Ambiguous).
UPSTREAM_REMOVED_VIDEOS: Tuple[str, ...] = ("video_test_0000270", "video_test_0001292")


def _field(video: str, info: Mapping[str, Any], key: str) -> Any:
    if key not in info:
        raise ValueError(f"Video {video} has no {key!r} field (fields: {sorted(info)})")
    return info[key]


def _record_label(label_ids: Dict[str, int], video: str, anno: Mapping[str, Any]) -> None:
    """Remember ``label -> label_id``; a label with two ids, or an id with two labels, is an error."""
    label, label_id = _field(video, anno, "label"), int(_field(video, anno, "label_id"))
    if label_ids.setdefault(label, label_id) != label_id:
        raise ValueError(f"Label {label!r} has label_id {label_ids[label]} and {label_id} (video {video})")
    owners = [name for name, i in label_ids.items() if i == label_id and name != label]
    if owners:
        raise ValueError(f"label_id {label_id} is used by {owners[0]!r} and {label!r} (video {video})")


def convert_actionformer_database(
    database: Mapping[str, Mapping[str, Any]],
    *,
    subset_map: Optional[Mapping[str, str]] = None,
    drop_videos: Iterable[str] = UPSTREAM_REMOVED_VIDEOS,
) -> Tuple[Dict[str, Dict[str, Any]], List[str]]:
    """Convert ActionFormer's ``database`` to OpenTAD's, and list the classes by ``label_id``.

    Args:
        database: ActionFormer's ``database`` mapping.
        subset_map: ActionFormer subset -> OpenTAD subset (default :data:`DEFAULT_SUBSET_MAP`).
        drop_videos: videos left out (default: the two upstream removes).

    Returns:
        The OpenTAD ``database`` (videos in input order) and the class names
        sorted by ``label_id``.

    Raises:
        ValueError: a video's subset is not in ``subset_map``, a field is
            missing, or labels and label ids do not match one to one.
    """
    subset_map = dict(DEFAULT_SUBSET_MAP if subset_map is None else subset_map)
    dropped = set(drop_videos)
    label_ids: Dict[str, int] = {}
    converted: Dict[str, Dict[str, Any]] = {}
    for video, info in database.items():
        if video in dropped:
            continue
        subset = _field(video, info, "subset")
        if subset not in subset_map:
            raise ValueError(f"Video {video} has subset {subset!r}, which the subset map {subset_map} does not map")
        duration = float(_field(video, info, "duration"))
        fps = float(_field(video, info, "fps"))
        annotations = []
        for anno in info.get("annotations", []):
            _record_label(label_ids, video, anno)
            start, end = _field(video, anno, "segment")
            annotations.append({"label": anno["label"], "segment": [float(start), float(end)]})
        converted[video] = {
            "subset": subset_map[subset],
            "duration": duration,
            "frame": int(round(duration * fps)),
            "annotations": annotations,
        }
    classes = sorted(label_ids, key=label_ids.__getitem__)
    return converted, classes


def convert_actionformer_file(
    src: str,
    out_file: str,
    class_map_file: str,
    *,
    subset_map: Optional[Mapping[str, str]] = None,
    drop_videos: Iterable[str] = UPSTREAM_REMOVED_VIDEOS,
) -> Dict[str, int]:
    """Read ActionFormer's JSON ``src``, write OpenTAD's ``out_file`` and ``class_map_file``.

    Args:
        src: ActionFormer's ``thumos14.json``.
        out_file: the OpenTAD annotation file to write.
        class_map_file: the class map to write (one class per line, by ``label_id``).
        subset_map: see :func:`convert_actionformer_database`.
        drop_videos: see :func:`convert_actionformer_database`.

    Returns:
        Number of videos per OpenTAD subset.

    Raises:
        FileNotFoundError / ValueError: ``src`` is missing, not JSON or has no
            ``database`` (the message names it), or the content is inconsistent.
    """
    database = load_annotation_database(src)
    try:
        converted, classes = convert_actionformer_database(database, subset_map=subset_map, drop_videos=drop_videos)
    except ValueError as exc:
        raise ValueError(f"{src}: {exc}") from exc
    for path in (out_file, class_map_file):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(out_file, "w", encoding="utf8") as f:
        json.dump({"database": converted}, f)
    with open(class_map_file, "w", encoding="utf8") as f:
        f.writelines(f"{name}\n" for name in classes)
    counts: Dict[str, int] = {}
    for info in converted.values():
        counts[info["subset"]] = counts.get(info["subset"], 0) + 1
    return counts


def find_missing_files(
    ann_file: str, data_path: str, *, suffix: str = ".npy", prefix: str = "", subsets: Optional[Sequence[str]] = None
) -> Tuple[Dict[str, int], List[str]]:
    """Videos of ``ann_file`` whose file ``data_path/<prefix><video><suffix>`` is missing.

    Args:
        ann_file: OpenTAD annotation file.
        data_path: folder of features (or videos).
        suffix: file ending, e.g. ``".npy"`` or ``".mp4"``.
        prefix: file name prefix.
        subsets: only these subsets (all by default).

    Returns:
        Number of videos per subset, and the sorted names of missing videos
        (the content of a block-list file).
    """
    database = load_annotation_database(ann_file)
    counts: Dict[str, int] = {}
    missing: List[str] = []
    for video, info in database.items():
        subset = info.get("subset")
        if subsets is not None and subset not in subsets:
            continue
        counts[str(subset)] = counts.get(str(subset), 0) + 1
        if not os.path.isfile(os.path.join(data_path, f"{prefix}{video}{suffix}")):
            missing.append(video)
    return counts, sorted(missing)
