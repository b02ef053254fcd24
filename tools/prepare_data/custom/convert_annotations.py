"""Turn a table of actions (video, start, end, label[, subset]) into OpenTAD's annotation files.

Writes, under --out:

    <name>_anno.json    {"database": {video: {"subset", "duration", "frame", "annotations": [{"label", "segment"}]}}}
    category_idx.txt    one class per line: the sorted labels, or the order of --class-map

and, with --config, a starting config: a recipe (default ActionFormer's THUMOS-14 one) with this
dataset's files, subsets, number of classes and feature channels. Then it runs check_dataset.py's
checks on the result.

Input: a CSV file with a header, or a JSON list of objects, with the keys

    video, start, end, label     start and end in seconds (required)
    subset                       optional; --default-subset otherwise
    duration, fps                optional, per video; else --durations, or the feature files and --fps

A row whose start, end and label are empty declares a video without actions.

Example:
    python tools/prepare_data/custom/convert_annotations.py --input my_actions.csv \
        --out data/my_dataset/annotations --name my_dataset --fps 30 \
        --features data/my_dataset/features --feature-stride 4 \
        --config configs/custom/my_dataset_actionformer.py

See docs/custom_dataset.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from check_dataset import check_dataset, format_report  # a sibling: this folder is on sys.path when run

from opentad.utils.class_map import read_class_map
from opentad.utils.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
REQUIRED = ("video", "start", "end", "label")
DEFAULT_RECIPE = os.path.join("configs", "actionformer", "thumos_i3d.py")


def read_table(path: str, required: Sequence[str] = REQUIRED) -> List[Dict[str, Any]]:
    """The rows of a CSV (with a header) or a JSON list of objects, each with ``_where`` (file:line or file[i]).

    Args:
        path: the table.
        required: keys every row must have.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a list of objects, or a required key missing (names the file and the keys found).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"table {path!r} does not exist")
    if path.lower().endswith(".json"):
        with open(path, encoding="utf8") as f:
            data = json.load(f)
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ValueError(f"{path}: expected a JSON list of objects with keys {list(required)}")
        rows = [dict(r, _where=f"{path}[{i}]") for i, r in enumerate(data)]
    else:
        with open(path, encoding="utf8", newline="") as f:
            reader = csv.DictReader(f)
            rows = [dict(r, _where=f"{path}:{reader.line_num}") for r in reader]
    for row in rows:
        missing = [key for key in required if key not in row]
        if missing:
            found = sorted(k for k in row if k != "_where")
            raise ValueError(f"{row['_where']}: no {missing} (keys found: {found}; required: {list(required)})")
    return rows


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(row: Mapping[str, Any], key: str) -> float:
    try:
        value = float(row[key])
    except (TypeError, ValueError):
        raise ValueError(f"{row['_where']}: {key}={row[key]!r} of video {row['video']!r} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"{row['_where']}: {key}={row[key]!r} of video {row['video']!r} is not finite")
    return value


def _per_video(rows: Sequence[Mapping[str, Any]], key: str, default: Any = None) -> Dict[str, Any]:
    """The value of optional column ``key`` for each video; rows of one video must agree."""
    values: Dict[str, Any] = {}
    for row in rows:
        if _blank(row.get(key)):
            continue
        value = str(row[key]).strip() if key == "subset" else _number(row, key)
        if values.setdefault(row["video"], value) != value:
            raise ValueError(f"{row['_where']}: video {row['video']!r} has {key} {value!r} here and "
                             f"{values[row['video']]!r} on an earlier row")
    return values if default is None else {row["video"]: values.get(row["video"], default) for row in rows}


def feature_rows(folder: str, video: str, where: str = "") -> int:
    """Number of rows ``T`` of ``folder/<video>.npy`` (a ``[T, C]`` array, read without pickle).

    Raises:
        FileNotFoundError: the file does not exist (names ``where``, the video and the path).
    """
    path = os.path.join(folder, f"{video}.npy")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}: video {video!r} has no duration given and no feature file {path} "
                                "to read it from")
    return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[0])


def build_database(rows: Sequence[Mapping[str, Any]], *, fps: Optional[float], default_subset: str,
                   durations: Optional[Mapping[str, float]] = None, features: Optional[str] = None,
                   feature_stride: int = 4) -> Dict[str, Dict[str, Any]]:
    """The annotation ``database``, videos in order of first appearance.

    A video's duration is its ``duration`` column, else ``durations[video]``, else
    ``T * feature_stride / fps`` from its feature file (``T`` rows); ``frame`` is
    ``round(duration * fps)``. Segments are written as given (check_dataset reports bad ones).

    Raises:
        ValueError: a malformed row, a video without fps or duration, a half-empty row
            (each names the row and the video).
    """
    subsets = _per_video(rows, "subset", default_subset)
    row_durations, row_fps = _per_video(rows, "duration"), _per_video(rows, "fps")
    database: Dict[str, Dict[str, Any]] = {}
    for row in rows:
        video = str(row["video"]).strip()
        if not video:
            raise ValueError(f"{row['_where']}: empty video name")
        if video not in database:
            rate = row_fps.get(video, fps)
            if rate is None or rate <= 0:
                raise ValueError(f"{row['_where']}: video {video!r} has no fps (an fps column or --fps)")
            if video in row_durations:
                duration = row_durations[video]
            elif durations and video in durations:
                duration = float(durations[video])
            elif features:
                duration = feature_rows(features, video, row["_where"]) * feature_stride / rate
            else:
                raise ValueError(f"{row['_where']}: video {video!r} has no duration (a duration column, "
                                 "--durations, or --features to read it from the feature file)")
            database[video] = dict(subset=subsets[video], duration=round(duration, 6),
                                   frame=int(round(duration * rate)), annotations=[])
        empty = [_blank(row.get(k)) for k in ("start", "end", "label")]
        if all(empty):
            continue  # declares the video only
        if any(empty):
            raise ValueError(f"{row['_where']}: video {video!r} has a blank start, end or label (all three "
                             "blank declares a video without actions)")
        segment = [_number(row, "start"), _number(row, "end")]
        database[video]["annotations"].append(dict(label=str(row["label"]).strip(), segment=segment))
    return database


def read_durations(path: str) -> Dict[str, float]:
    """Durations in seconds from a table (CSV or JSON, as :func:`read_table`) with keys ``video`` and ``duration``."""
    return {str(r["video"]).strip(): _number(r, "duration") for r in read_table(path, ("video", "duration"))}


def starting_config(config_path: str, *, recipe: str, ann_file: str, class_map: str, data_path: str,
                    num_classes: int, in_channels: Optional[int], train_subset: str, eval_subset: str,
                    feature_stride: int, offset_frames: int, name: str) -> str:
    """The text of a config deriving from ``recipe`` (from the repository root, or absolute) for this dataset.

    Besides files and subsets, it sets only the keys the recipe has: the datasets' ``feature_stride``,
    ``sample_stride``, ``offset_frames`` (and ``class_agnostic=False``), the model's
    ``projection.in_channels`` and ``rpn_head.num_classes``.
    """
    folder, target = os.path.dirname(os.path.abspath(config_path)), os.path.join(ROOT, recipe)
    inside = os.path.commonpath([folder, ROOT]) == ROOT  # relative within the repository, else absolute
    base = os.path.relpath(target, folder) if inside else target
    cfg = load_config(target)
    split_keys = dict(feature_stride=feature_stride, sample_stride=1, offset_frames=offset_frames, class_agnostic=False)
    split_keys = {k: v for k, v in split_keys.items() if k in cfg.dataset.train}
    model = cfg.get("model", {})
    parts = []
    if in_channels is not None and "in_channels" in model.get("projection", {}):
        parts.append(f"projection=dict(in_channels={in_channels})")
    if "num_classes" in model.get("rpn_head", {}):
        parts.append(f"rpn_head=dict(num_classes={num_classes})")
    return f'''# {name}: written by tools/prepare_data/custom/convert_annotations.py from the recipe {recipe}
# (docs/custom_dataset.md). Check the data first: tools/prepare_data/custom/check_dataset.py --config <this file>
_base_ = [{base!r}]

annotation_path = {ann_file!r}
class_map = {class_map!r}
data_path = {data_path!r}
block_list = None  # or data_path + "missing_files.txt" (check_dataset.py --write-block-list)

_files = dict(ann_file=annotation_path, class_map=class_map, data_path=data_path, block_list=block_list)
_keys = dict({", ".join(f"{k}={v!r}" for k, v in split_keys.items())})
dataset = dict(
    train=dict(subset_name={train_subset!r}, **_files, **_keys),
    val=dict(subset_name={eval_subset!r}, **_files, **_keys),
    test=dict(subset_name={eval_subset!r}, **_files, **_keys),
)
evaluation = dict(subset={eval_subset!r}, ground_truth_filename=annotation_path)
model = dict({", ".join(parts)})
work_dir = {os.path.join("exps", name, os.path.splitext(os.path.basename(recipe))[0])!r}
'''


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="CSV or JSON table of actions")
    parser.add_argument("--out", required=True, help="folder of the annotation file and class map")
    parser.add_argument("--name", default="custom",
                        help="dataset name: <name>_anno.json, work_dir (default: %(default)s)")
    parser.add_argument("--fps", type=float, help="frame rate of every video (an fps column overrides it)")
    parser.add_argument("--durations", help="CSV video,duration (seconds) for videos without a duration column")
    parser.add_argument("--features", help="folder of <video>.npy features [T, C]: durations and channels")
    parser.add_argument("--feature-stride", type=int, default=4, help="frames per feature row (default: 4)")
    parser.add_argument("--offset-frames", type=int, default=0, help="frame of the first row's start (default: 0)")
    parser.add_argument("--default-subset", default="training", help="subset of rows without one (default: training)")
    parser.add_argument("--train-subset", default="training")
    parser.add_argument("--eval-subset", default="validation")
    parser.add_argument("--class-map", help="an existing class map to keep (its order = class indices)")
    parser.add_argument("--config", help="write a starting config here")
    parser.add_argument("--recipe", default=DEFAULT_RECIPE, help="config the starting config derives from")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.config and not os.path.isfile(os.path.join(ROOT, args.recipe)):
        raise FileNotFoundError(f"--recipe {args.recipe!r} is not a config under {ROOT}")
    rows = read_table(args.input)
    durations = read_durations(args.durations) if args.durations else None
    database = build_database(rows, fps=args.fps, default_subset=args.default_subset, durations=durations,
                              features=args.features, feature_stride=args.feature_stride)
    os.makedirs(args.out, exist_ok=True)
    ann_file = os.path.join(args.out, f"{args.name}_anno.json")
    with open(ann_file, "w", encoding="utf8") as f:
        json.dump({"version": args.name, "database": database}, f)
    class_map = os.path.join(args.out, "category_idx.txt")
    if args.class_map:
        classes = read_class_map(args.class_map, key="--class-map")
    else:
        classes = sorted({a["label"] for info in database.values() for a in info["annotations"]})
    with open(class_map, "w", encoding="utf8") as f:
        f.writelines(f"{c}\n" for c in classes)
    print(f"wrote {ann_file} ({len(database)} videos) and {class_map} ({len(classes)} classes)")
    if args.config:
        channels = None
        if args.features and database:
            first = os.path.join(args.features, f"{next(iter(database))}.npy")
            channels = int(np.load(first, mmap_mode="r", allow_pickle=False).shape[1])
        os.makedirs(os.path.dirname(os.path.abspath(args.config)), exist_ok=True)
        with open(args.config, "w", encoding="utf8") as f:
            f.write(starting_config(
                args.config, recipe=args.recipe, ann_file=ann_file, class_map=class_map,
                data_path=(args.features or "data/<features>").rstrip("/") + "/", num_classes=len(classes),
                in_channels=channels, train_subset=args.train_subset, eval_subset=args.eval_subset,
                feature_stride=args.feature_stride, offset_frames=args.offset_frames, name=args.name))
        print(f"wrote {args.config} (from {args.recipe})")
    findings = check_dataset(ann_file, class_map, args.features, eval_subset=args.eval_subset)
    print(format_report(findings))
    return 1 if any(f.level == "error" for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
