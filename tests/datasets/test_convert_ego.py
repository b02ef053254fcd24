"""Converters of the official EPIC-Kitchens-100, EPIC-Sounds and Ego4D-MQ annotations, the check, and their tools."""
import csv
import io
import json
import os
import runpy
from contextlib import redirect_stdout

import numpy as np
import pytest

from opentad.datasets import EpicKitchensPaddingDataset
from opentad.datasets.check_ego import check_annotations
from opentad.datasets.convert_ego import (
    convert_ego4d_moments,
    convert_epic_csvs,
    timestamp_seconds,
    write_epic_kitchens_files,
    write_epic_sounds_files,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tools", "prepare_data")
EPIC_COLUMNS = ["video_id", "start_timestamp", "stop_timestamp", "verb", "verb_class", "noun", "noun_class"]


def _write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)


@pytest.fixture
def epic_csvs(tmp_path):
    _write_csv(tmp_path / "EPIC_100_video_info.csv", ["video_id", "duration", "fps", "resolution"],
               [["P01_01", "80.5", "50.0", "1920x1080"], ["P01_02", "30.0", "50.0", "1920x1080"],
                ["P02_01", "10.0", "59.94", "1920x1080"]])
    _write_csv(tmp_path / "EPIC_100_train.csv", EPIC_COLUMNS, [
        ["P01_01", "00:00:01.50", "00:00:03.257", "take", "0", "plate", "11"],
        ["P01_01", "00:01:02.00", "00:01:05.10", "wash", "2", "tap", "3"]])
    _write_csv(tmp_path / "EPIC_100_validation.csv", EPIC_COLUMNS,
               [["P01_02", "00:00:00.00", "00:00:02.00", "stir", "96", "onion", "299"]])
    _write_csv(tmp_path / "EPIC_100_test_timestamps.csv", ["video_id", "start_timestamp", "stop_timestamp"],
               [["P02_01", "00:00:01.00", "00:00:02.00"]])
    return tmp_path


def test_timestamps():
    assert timestamp_seconds("01:02:03.25") == 3723.25 and timestamp_seconds("00:00:00.00") == 0.0
    with pytest.raises(ValueError, match="HH:MM:SS"):
        timestamp_seconds("62.5")


def test_epic_kitchens_conversion_hand_worked(epic_csvs, tmp_path):
    """3.257 s rounds to 3.26, 1 min 5.1 s is 65.1; ids are zero-padded to three digits; test videos get no
    annotations; every video keeps the duration of EPIC_100_video_info.csv."""
    database = convert_epic_csvs(str(epic_csvs))
    assert database == {
        "P01_01": {"subset": "train", "duration": 80.5, "annotations": [
            {"segment": [1.5, 3.26], "verb_label": "id_000", "verb_label_name": "take",
             "noun_label": "id_011", "noun_label_name": "plate"},
            {"segment": [62.0, 65.1], "verb_label": "id_002", "verb_label_name": "wash",
             "noun_label": "id_003", "noun_label_name": "tap"}]},
        "P01_02": {"subset": "val", "duration": 30.0, "annotations": [
            {"segment": [0.0, 2.0], "verb_label": "id_096", "verb_label_name": "stir",
             "noun_label": "id_299", "noun_label_name": "onion"}]},
        "P02_01": {"subset": "test", "duration": 10.0},
    }
    out = tmp_path / "annotations"
    write_epic_kitchens_files(database, str(out))
    noun = json.loads((out / "epic_kitchens_noun.json").read_text())
    assert noun["version"] == "epic-kitchens-100-noun"
    assert noun["database"]["P01_01"]["annotations"][1] == {"segment": [62.0, 65.1], "label": "id_003",
                                                            "label_name": "tap"}
    assert "annotations" not in noun["database"]["P02_01"]
    assert (out / "category_idx_verb.txt").read_text() == "id_000\nid_002\nid_096\n"
    assert json.loads((out / "epic_kitchens_full.json").read_text())["database"] == database
    # round trip through the dataset: frames int(t * 30) of the verb file, labels by the class map;
    # 65.1 * 30 is 1952.9999999999998 in float64, truncated to 1952 as upstream does
    dataset = EpicKitchensPaddingDataset(ann_file=str(out / "epic_kitchens_verb.json"), subset_name="train",
                                         class_map=str(out / "category_idx_verb.txt"), data_path=".", pipeline=[],
                                         fps=30, feature_stride=1)
    sample = dataset.sample_dict(0)
    assert np.array_equal(sample["gt_segments"], np.array([[45, 97], [1860, 1952]], dtype=np.float32))
    assert sample["gt_labels"].tolist() == [0, 1]


def test_epic_conversion_errors_name_file_and_line(epic_csvs):
    _write_csv(epic_csvs / "EPIC_100_validation.csv", EPIC_COLUMNS,
               [["P09_09", "00:00:00.00", "00:00:02.00", "stir", "96", "onion", "299"]])
    with pytest.raises(ValueError, match=r"EPIC_100_validation\.csv line 2: video P09_09 is not in .*video_info"):
        convert_epic_csvs(str(epic_csvs))
    _write_csv(epic_csvs / "EPIC_100_validation.csv", EPIC_COLUMNS,
               [["P01_02", "2.0", "00:00:02.00", "stir", "96", "onion", "299"]])
    with pytest.raises(ValueError, match=r"validation\.csv line 2 \(video P01_02\): timestamp '2.0'"):
        convert_epic_csvs(str(epic_csvs))
    os.remove(epic_csvs / "EPIC_100_train.csv")
    with pytest.raises(FileNotFoundError, match="EPIC_100_train.csv"):
        convert_epic_csvs(str(epic_csvs))


def test_epic_sounds_conversion(epic_csvs, tmp_path):
    columns = ["video_id", "start_timestamp", "stop_timestamp", "class", "class_id"]
    _write_csv(epic_csvs / "EPIC_Sounds_train.csv", columns, [["P01_01", "00:00:01.004", "00:00:01.50", "click", "7"]])
    _write_csv(epic_csvs / "EPIC_Sounds_validation.csv", columns,
               [["P01_02", "00:00:04.00", "00:00:05.00", "rustle", "43"]])
    _write_csv(epic_csvs / "EPIC_Sounds_detection_test_videos.csv", ["video_id"], [["P02_01"]])
    database = convert_epic_csvs(str(epic_csvs), sounds=True)
    assert database["P01_01"] == {"subset": "train", "duration": 80.5,
                                  "annotations": [{"segment": [1.0, 1.5], "label": "id_007"}]}
    assert database["P02_01"] == {"subset": "test", "duration": 10.0}
    write_epic_sounds_files(database, str(tmp_path / "out"))
    assert json.loads((tmp_path / "out" / "epic_sounds.json").read_text())["database"] == database
    assert (tmp_path / "out" / "category_idx.txt").read_text() == "id_007\nid_043\n"


def _clip(uid, first, last, start, end, labels=()):
    return {"clip_uid": uid, "video_start_frame": first, "video_end_frame": last, "video_start_sec": start,
            "video_end_sec": end, "annotations": [{"labels": list(labels)}]}


def _moment(start, end, label, primary=True):
    return {"video_start_time": start, "video_end_time": end, "label": label, "primary": primary}


def test_ego4d_conversion_hand_worked(tmp_path):
    """Clip c1 starts at 1 s of its video: moments shift by 1 s and round to 4 decimals; the secondary moment
    is left out; c_slow (100 frames in 480 s: 0.2 fps) and c_empty (no primary moment) are left out."""
    train = {"version": "v2", "date": "220429", "videos": [{"split": "train", "clips": [
        _clip("c1", 30, 14430, 1.0, 481.0, [_moment(11.0, 15.12345, "cut"), _moment(20, 30, "wash", primary=False)]),
        _clip("c_slow", 0, 100, 0.0, 480.0, [_moment(1, 2, "cut")]),
        _clip("c_empty", 0, 14400, 0.0, 480.0, [_moment(1, 2, "cut", primary=False)])]}]}
    val = {"videos": [{"split": "val", "clips": [_clip("c2", -5, 900, -0.5, 30.0, [_moment(3.0, 4.0, "stir")])]}]}
    test = {"videos": [{"split": "test", "clips": [{k: v for k, v in _clip("c3", 0, 900, 0.0, 30.0).items()
                                                    if k != "annotations"}]}]}
    for name, content in (("moments_train.json", train), ("moments_val.json", val),
                          ("moments_test_unannotated.json", test)):
        (tmp_path / name).write_text(json.dumps(content))
    database, header, skipped = convert_ego4d_moments(str(tmp_path))
    assert header == {"version": "v2", "date": "220429"} and skipped == {"abnormal fps": 1, "no moment": 1}
    assert database == {
        "c1": {"duration": 480.0, "frame": 14400, "subset": "train",
               "annotations": [{"segment": [10.0, 14.1235], "label": "cut"}]},
        # a negative start frame / second counts from 0, as upstream
        "c2": {"duration": 30.0, "frame": 900, "subset": "val",
               "annotations": [{"segment": [3.0, 4.0], "label": "stir"}]},
        "c3": {"duration": 30.0, "frame": 900, "subset": "test"},
    }


def test_tools_convert_and_check(tmp_path, epic_csvs):
    """The EPIC converter writes what the check reads; the check counts a bad segment, an unknown label and a
    missing feature file, exits 1, and 0 once the block list is written."""
    out = tmp_path / "annotations"
    _run("epic/convert_epic_kitchens_anno.py", [str(epic_csvs), str(out)])
    feats = tmp_path / "feats"
    feats.mkdir()
    np.save(feats / "P01_01.npy", np.zeros((2, 2), np.float32))
    ann = json.loads((out / "epic_kitchens_verb.json").read_text())
    ann["database"]["P01_01"]["annotations"].append({"segment": [70.0, 90.0], "label": "id_000"})
    ann["database"]["P01_02"]["annotations"][0]["label"] = "id_097"
    (out / "epic_kitchens_verb.json").write_text(json.dumps(ann))
    args = ["--ann", str(out / "epic_kitchens_verb.json"), "--class-map", str(out / "category_idx_verb.txt"),
            "--data", str(feats)]
    status, text = _run("epic/check_data.py", args)
    assert status == 1 and "train: 1 videos\nval: 1 videos\ntest: 1 videos\nactions: 4" in text
    assert "skipped by the datasets): 1 (P01_01 [70.0, 90.0] (duration 80.5))" in text
    assert "unknown labels: 1 ('id_097' in 1 video(s), e.g. P01_02)" in text
    assert "missing files: 2 (P01_02; P02_01)" in text
    report = check_annotations(str(out / "epic_kitchens_verb.json"), str(out / "category_idx_verb.txt"), str(feats),
                               subsets=["train"])
    assert report.videos == {"train": 1} and not report.unknown_labels and not report.missing_files
    ann["database"]["P01_02"]["annotations"][0]["label"] = "id_096"
    (out / "epic_kitchens_verb.json").write_text(json.dumps(ann))
    status, text = _run("epic/check_data.py", args + ["--write-block-list"])
    assert status == 0 and (feats / "missing_files.txt").read_text() == "P01_02\nP02_01\n"


def _run(tool, argv):
    """Run ``tools/prepare_data/<tool>`` as ``__main__`` in this process; returns (exit status, stdout)."""
    import sys

    old, sys.argv = sys.argv, [tool] + argv
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            runpy.run_path(os.path.join(TOOLS, tool), run_name="__main__")
        status = 0
    except SystemExit as exc:
        status = exc.code
    finally:
        sys.argv = old
    return status, out.getvalue()
