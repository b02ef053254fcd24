"""Check a dataset in OpenTAD's annotation layout before training: one line per kind of problem.

Examples:
    python tools/prepare_data/custom/check_dataset.py --config configs/custom/my_dataset_actionformer.py
    python tools/prepare_data/custom/check_dataset.py --ann data/my_dataset/annotations/my_dataset_anno.json \
        --class-map data/my_dataset/annotations/category_idx.txt --data data/my_dataset/features

Each line gives a kind, a count and the first offenders:

    videos                        a video without duration > 0 or frame (ERROR: the datasets refuse it)
    bad segments                  start >= end, start < 0, end > duration, malformed (WARNING: skipped)
    unknown labels                labels outside the class map (ERROR: the datasets refuse them)
    missing files                 videos without their feature or video file (ERROR; --write-block-list)
    classes without ground truth  no action in the evaluation subset (WARNING: left out of the mAP mean)
    duplicate segments            same label, boundaries within 1e-3 s, one video (WARNING: kept once)
    non-finite features           --scan-features: NaN or inf, or not [T, C] (ERROR: NaN losses)

Exit status 1 when a line is an ERROR. See docs/custom_dataset.md.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tqdm

from opentad.datasets.base.util import load_annotation_database, read_block_list
from opentad.evaluations import remove_duplicate_annotations
from opentad.utils.class_map import read_class_map

SHOWN = 5  # offenders named per line


@dataclass
class Finding:
    """One kind of problem: ``level`` is ``ok``, ``warning``, ``error`` or ``skipped``."""

    kind: str
    level: str
    count: int
    detail: str
    offenders: List[str] = field(default_factory=list)

    def line(self) -> str:
        shown = ", ".join(self.offenders[:SHOWN]) + (", ..." if len(self.offenders) > SHOWN else "")
        return f"{self.level.upper():8s}{self.kind}: {self.detail}" + (f": {shown}" if shown else "")


def _finding(kind: str, level: str, offenders: Sequence[str], detail: str) -> Finding:
    return Finding(kind, level if offenders else "ok", len(offenders), detail if offenders else "none", list(offenders))


def _segment_problem(segment: Any, duration: float) -> Optional[str]:
    """Why ``segment`` is not ``0 <= start < end <= duration`` (None when it is)."""
    try:
        start, end = float(segment[0]), float(segment[1])
        if len(segment) != 2 or not (np.isfinite(start) and np.isfinite(end)):
            raise ValueError
    except (TypeError, ValueError, IndexError, KeyError):
        return "malformed"
    if start >= end:
        return "start >= end"
    if start < 0 or end > duration:
        return f"outside [0, {duration:g}] s"
    return None


@dataclass
class _Scan:
    """What one pass over the annotation database collects."""

    known: set
    ignored: set
    eval_subset: str
    blocked: set
    bad_videos: List[str] = field(default_factory=list)
    bad_segments: List[str] = field(default_factory=list)
    unknown: Dict[str, List[str]] = field(default_factory=dict)
    duplicates: List[str] = field(default_factory=list)
    eval_actions: collections.Counter = field(default_factory=collections.Counter)
    subsets: collections.Counter = field(default_factory=collections.Counter)
    actions: int = 0

    def video(self, name: str, info: Any) -> None:
        if not isinstance(info, Mapping):
            self.bad_videos.append(f"{name} (not an object)")
            return
        self.subsets[str(info.get("subset"))] += 1
        try:
            duration = float(info["duration"])
            if not duration > 0 or "frame" not in info:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            self.bad_videos.append(f"{name} (duration={info.get('duration')!r}, frame={info.get('frame')!r})")
            return
        valid = []
        for ann in info.get("annotations") or []:
            label = ann.get("label") if isinstance(ann, Mapping) else None
            if label in self.ignored:
                continue
            self.actions += 1
            if label not in self.known:
                self.unknown.setdefault(str(label), []).append(name)
            problem = _segment_problem(ann.get("segment") if isinstance(ann, Mapping) else None, duration)
            if problem:
                self.bad_segments.append(f"{name} {ann.get('segment')!r} ({problem})")
                continue
            valid.append(ann)
        kept = remove_duplicate_annotations(valid)
        kept_ids = {id(a) for a in kept}
        self.duplicates += [f"{name} {a['label']!r} {a['segment']}" for a in valid if id(a) not in kept_ids]
        if info.get("subset") == self.eval_subset and name not in self.blocked:
            self.eval_actions.update(a["label"] for a in kept if a["label"] in self.known)


def _missing_files(names: Sequence[str], folders: Sequence[str], prefix: str, suffix: str) -> List[str]:
    """The names of ``names`` whose file is missing from any of ``folders``."""
    return [n for n in tqdm.tqdm(names, desc="files", unit="video", leave=False)
            if not all(os.path.isfile(os.path.join(folder, f"{prefix}{n}{suffix}")) for folder in folders)]


def _bad_features(names: Sequence[str], folder: str, prefix: str, suffix: str) -> List[str]:
    """Feature files (npy) that hold NaN/inf or are not ``[T, C]`` with ``T >= 1``."""
    bad = []
    for name in tqdm.tqdm(names, desc="features", unit="file"):
        path = os.path.join(folder, f"{prefix}{name}{suffix}")
        if not os.path.isfile(path):
            continue
        try:
            feats = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            bad.append(f"{name} (unreadable: {exc})")
            continue
        if feats.ndim != 2 or feats.shape[0] < 1:
            bad.append(f"{name} (shape {tuple(feats.shape)}, expected [T, C])")
        elif not np.isfinite(feats).all():
            bad.append(f"{name} ({int((~np.isfinite(feats)).sum())} NaN/inf values)")
    return bad


def check_dataset(ann_file: str, class_map: str, data_path: Optional[str | Sequence[str]], *,
                  eval_subset: str = "validation", prefix: str = "", suffix: str = ".npy",
                  block_list: Optional[str | Sequence[str]] = None, ignored_labels: Sequence[str] = ("Ambiguous",),
                  scan_features: bool = False) -> List[Finding]:
    """Check an annotation file, its class map and data folder(s); one :class:`Finding` per kind.

    Args:
        ann_file, class_map: the dataset's files.
        data_path: folder(s) of ``<prefix><video><suffix>`` files; None skips the file checks.
        eval_subset: the subset the evaluation reads.
        block_list: videos left out (a file, one per line, or names), as the datasets' key.
        ignored_labels: labels that are not classes (THUMOS' ``Ambiguous``).
        scan_features: read every ``.npy`` feature file and look for NaN/inf.

    Raises:
        FileNotFoundError, ValueError: the annotation file, class map or block list cannot be read.
    """
    database = load_annotation_database(ann_file)
    classes = read_class_map(class_map)
    blocked = read_block_list(block_list)
    scan = _Scan(known=set(classes), ignored=set(ignored_labels), eval_subset=eval_subset, blocked=blocked)
    for name, info in database.items():
        scan.video(name, info)
    subsets = ", ".join(f"{s} {n}" for s, n in sorted(scan.subsets.items()))
    findings = [Finding("dataset", "ok", len(database), f"{len(database)} videos ({subsets}), {scan.actions} "
                        f"actions, {len(classes)} classes, {len(blocked)} blocked")]
    findings.append(_finding("videos", "error", scan.bad_videos,
                             f"{len(scan.bad_videos)} without duration > 0 or frame"))
    findings.append(_finding("bad segments", "warning", scan.bad_segments,
                             f"{len(scan.bad_segments)} of {scan.actions} actions (the datasets skip them)"))
    unknown = [f"{label!r} x{len(v)} (first in {v[0]})" for label, v in sorted(scan.unknown.items())]
    findings.append(_finding("unknown labels", "error", unknown, f"{sum(map(len, scan.unknown.values()))} actions "
                             f"with {len(unknown)} label(s) not in {class_map} ({len(classes)} classes)"))
    findings += _file_findings(list(database), blocked, data_path, prefix, suffix, scan_features)
    if scan.subsets.get(eval_subset, 0) == 0:
        findings.append(Finding("classes without ground truth", "error", len(classes),
                                f"no video of evaluation subset {eval_subset!r} (subsets: {subsets})"))
    else:
        absent = [c for c in classes if scan.eval_actions[c] == 0]
        findings.append(_finding("classes without ground truth", "warning", absent,
                                 f"{len(absent)} of {len(classes)} classes have no action in subset {eval_subset!r}"
                                 " (no AP: left out of the mAP mean)"))
    findings.append(_finding("duplicate segments", "warning", scan.duplicates,
                             f"{len(scan.duplicates)} (same label, boundaries within 1e-3 s; kept once)"))
    return findings


def _file_findings(names: List[str], blocked: set, data_path, prefix: str, suffix: str,
                   scan_features: bool) -> List[Finding]:
    if data_path is None:
        return [Finding("missing files", "skipped", 0, "no data folder given")]
    folders = [data_path] if isinstance(data_path, str) else list(data_path)
    used = [n for n in names if n not in blocked]
    missing = _missing_files(used, folders, prefix, suffix)
    pattern = " or ".join(os.path.join(folder, f"{prefix}<video>{suffix}") for folder in folders)
    findings = [_finding("missing files", "error", missing, f"{len(missing)} of {len(used)} videos (not blocked) "
                         f"have no {pattern} (leave them out: --write-block-list)")]
    if scan_features:
        bad = [b for folder in folders for b in _bad_features(used, folder, prefix, suffix)]
        findings.append(_finding("non-finite features", "error", bad, f"{len(bad)} feature file(s)"))
    return findings


def format_report(findings: Sequence[Finding]) -> str:
    """One line per finding."""
    return "\n".join(f.line() for f in findings)


def files_from_config(path: str) -> Dict[str, Any]:
    """``check_dataset`` keywords from a config: ``dataset.train``'s files and pipeline, ``evaluation.subset``."""
    from opentad.utils.config import load_config

    cfg = load_config(path)
    train = cfg.dataset.train
    keys = dict(ann_file=train.ann_file, class_map=train.class_map, data_path=train.data_path,
                block_list=train.get("block_list"), eval_subset=cfg.get("evaluation", {}).get("subset", "validation"))
    for step in train.get("pipeline", []):
        if step.get("type") == "LoadFeats" and isinstance(step.get("feat_format"), str):
            keys.update(prefix=step.get("prefix", ""), suffix=f"{step.get('suffix', '')}.{step['feat_format']}")
        elif step.get("type") == "PrepareVideoInfo":
            keys.update(prefix=step.get("prefix", ""), suffix=f".{step.get('format', 'mp4')}")
    return keys


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="read the files, subsets and file names from this config")
    parser.add_argument("--ann", help="annotation file (overrides the config's)")
    parser.add_argument("--class-map", help="class map file (overrides the config's)")
    parser.add_argument("--data", help="folder of features or videos (overrides the config's)")
    parser.add_argument("--eval-subset", help="the evaluated subset (default: the config's, or validation)")
    parser.add_argument("--suffix", help="file ending, .npy for features, .mp4 for videos (default: .npy)")
    parser.add_argument("--prefix", help="file name prefix")
    parser.add_argument("--scan-features", action="store_true", help="read every .npy file: NaN, inf, shape")
    parser.add_argument("--write-block-list", action="store_true", help="write the missing names to "
                        "<data>/missing_files.txt (the configs' block_list)")
    args = parser.parse_args(argv)
    keys = files_from_config(args.config) if args.config else {}
    for key, value in (("ann_file", args.ann), ("class_map", args.class_map), ("data_path", args.data),
                       ("eval_subset", args.eval_subset), ("suffix", args.suffix), ("prefix", args.prefix)):
        if value is not None:
            keys[key] = value
    if "ann_file" not in keys or "class_map" not in keys or "data_path" not in keys:
        parser.error("give --config, or --ann, --class-map and --data")
    if args.write_block_list:
        keys["block_list"] = None
    try:
        findings = check_dataset(**keys, scan_features=args.scan_features)
    except (OSError, ValueError) as exc:  # an unreadable or missing annotation / class-map file: one line
        print(f"check_dataset: {exc}", file=sys.stderr)
        return 2
    print(format_report(findings))
    missing = next((f for f in findings if f.kind == "missing files"), None)
    if args.write_block_list and missing is not None and isinstance(keys.get("data_path"), str):
        target = os.path.join(keys["data_path"], "missing_files.txt")
        with open(target, "w", encoding="utf8") as f:
            f.writelines(f"{name}\n" for name in missing.offenders)
        print(f"wrote {target} ({missing.count} videos); set block_list to it in the config")
        findings.remove(missing)
    return 1 if any(f.level == "error" for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
