"""Helpers shared by the dataset bases: reading annotation, class-map and block-list files.

Every reader names the file at fault in its error, so a wrong path in a
config is found at dataset construction, not in the middle of an epoch.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Set, Union

import numpy as np

from opentad.utils.class_map import read_class_map

logger = logging.getLogger(__name__)

__all__ = [
    "load_annotation_database",
    "read_block_list",
    "load_class_map",
    "generate_class_map",
    "filter_same_annotation",
]


def load_annotation_database(ann_file: str) -> Dict[str, Dict[str, Any]]:
    """Read an OpenTAD annotation file and return its ``database`` mapping.

    Args:
        ann_file: JSON file ``{"database": {video_name: {...}, ...}}``.

    Returns:
        ``{video_name: video_info}`` in file order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not valid JSON, or has no ``database`` mapping.
    """
    if not os.path.isfile(ann_file):
        raise FileNotFoundError(f"Annotation file not found: {ann_file}")
    with open(ann_file, "r", encoding="utf8") as f:
        try:
            content = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"Annotation file {ann_file} is not valid JSON: {exc}") from exc
    if not isinstance(content, Mapping) or "database" not in content:
        found = sorted(content) if isinstance(content, Mapping) else type(content).__name__
        raise ValueError(
            f"Annotation file {ann_file} has no 'database' key (found: {found}); "
            "expected the OpenTAD layout {'database': {video_name: {'subset', 'duration', ...}}}"
        )
    database = content["database"]
    if not isinstance(database, Mapping):
        raise ValueError(
            f"Annotation file {ann_file}: 'database' must map video names to dicts, got {type(database).__name__}"
        )
    return dict(database)


def read_block_list(block_list: Union[None, str, Sequence[str]]) -> Set[str]:
    """Names of videos to leave out.

    Args:
        block_list: None (nothing blocked), a list of video names, or a text
            file with one video name per line (blank lines are ignored).

    Raises:
        FileNotFoundError: ``block_list`` is a path that does not exist.
        TypeError: ``block_list`` is of another type.
    """
    if block_list is None:
        return set()
    if isinstance(block_list, str):
        if not os.path.isfile(block_list):
            raise FileNotFoundError(
                f"block_list file not found: {block_list} (set block_list=None if no video is missing)"
            )
        with open(block_list, "r", encoding="utf8") as f:
            return {line.strip() for line in f if line.strip()}
    if isinstance(block_list, (list, tuple, set)):
        return {str(name) for name in block_list}
    raise TypeError(f"block_list must be None, a list of video names or a file path, got {type(block_list).__name__}")


def generate_class_map(
    database: Mapping[str, Mapping[str, Any]], class_map_path: str, *, ignored_labels: Iterable[str] = ()
) -> List[str]:
    """Build a class map from every label in ``database`` (all subsets), sorted, and save it.

    The file is written atomically (temporary file, then rename), so several
    processes creating it at once never leave a half-written file.

    Args:
        database: the annotation ``database``.
        class_map_path: where to write one class name per line.
        ignored_labels: labels that are not classes (THUMOS' ``Ambiguous``).

    Returns:
        The sorted class names.
    """
    ignored = set(ignored_labels)
    labels = {
        anno["label"]
        for info in database.values()
        for anno in info.get("annotations", [])
        if anno["label"] not in ignored
    }
    class_map = sorted(labels)
    folder = os.path.dirname(os.path.abspath(class_map_path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=".class_map_", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf8") as f:
        f.writelines(f"{name}\n" for name in class_map)
    os.replace(tmp_path, class_map_path)
    return class_map


def load_class_map(
    class_map_path: str,
    database: Mapping[str, Mapping[str, Any]],
    *,
    ann_file: str,
    ignored_labels: Iterable[str] = (),
) -> List[str]:
    """Read a class map (one name per line), or generate it from the annotations if it does not exist.

    Args:
        class_map_path: the class map file.
        database: the annotation ``database`` used when the file is missing.
        ann_file: the annotation file's path (for the log line).
        ignored_labels: labels left out of a generated class map.

    Returns:
        Class names; the line number (from 0) is the class index.

    Raises:
        ValueError: the file exists but lists no class, or a class twice (see :func:`read_class_map`).
    """
    if os.path.exists(class_map_path):
        return read_class_map(class_map_path)
    class_map = generate_class_map(database, class_map_path, ignored_labels=ignored_labels)
    logger.info("Class map %s did not exist: generated from %s with %d classes", class_map_path, ann_file,
                len(class_map))
    return class_map


def filter_same_annotation(annotation: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Drop repeated (segment, label) pairs, keeping the first of each, in order.

    Two annotations are the same only if both the segment and the label are
    equal: THUMOS annotates every ``CliffDiving`` also as ``Diving`` with the
    same segment, and both are kept.

    Args:
        annotation: ``gt_segments`` ``[K, 2]`` and ``gt_labels`` ``[K]``.

    Returns:
        ``gt_segments`` float32 ``[K', 2]`` and ``gt_labels`` int64 ``[K']``.
    """
    seen = set()
    keep: List[int] = []
    segments = np.asarray(annotation["gt_segments"], dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(annotation["gt_labels"]).reshape(-1)
    for i, (segment, label) in enumerate(zip(segments.tolist(), labels.tolist())):
        key = (segment[0], segment[1], label)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return dict(
        gt_segments=segments[keep].astype(np.float32).reshape(-1, 2),
        gt_labels=labels[keep].astype(np.int64),
    )
