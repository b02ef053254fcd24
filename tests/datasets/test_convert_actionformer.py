"""ActionFormer thumos14.json -> OpenTAD layout, on a small file written here; and the data check."""
import json
import os
import runpy
import sys

import pytest

from opentad.datasets import ThumosPaddingDataset
from opentad.datasets.convert import convert_actionformer_database, convert_actionformer_file, find_missing_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def anno(label, label_id, segment, fps=30.0):
    return {"label": label, "segment": segment, "segment(frames)": [segment[0] * fps, segment[1] * fps],
            "label_id": label_id}


ACTIONFORMER = {
    "version": "Thumos14-30fps",
    "database": {
        "video_validation_0000001": {
            "subset": "Validation", "duration": 10.0, "fps": 30.0,
            "annotations": [anno("Zeta", 0, [1.0, 2.5]), anno("Alpha", 2, [3.0, 4.0])],
        },
        "video_test_0000001": {
            "subset": "Test", "duration": 5.5, "fps": 29.97,
            "annotations": [anno("Mid", 1, [0.5, 1.0], 29.97)],
        },
        "video_test_0000270": {"subset": "Test", "duration": 3.0, "fps": 30.0, "annotations": []},
        "video_test_0001292": {"subset": "Test", "duration": 3.0, "fps": 30.0, "annotations": []},
    },
}


def test_convert_database_by_hand():
    database, classes = convert_actionformer_database(ACTIONFORMER["database"])
    assert classes == ["Zeta", "Mid", "Alpha"]  # by label_id 0, 1, 2
    assert list(database) == ["video_validation_0000001", "video_test_0000001"]  # the two upstream drops are gone
    assert database["video_validation_0000001"] == {
        "subset": "training", "duration": 10.0, "frame": 300,
        "annotations": [{"label": "Zeta", "segment": [1.0, 2.5]}, {"label": "Alpha", "segment": [3.0, 4.0]}],
    }
    # 5.5 s * 29.97 fps = 164.835 -> 165 frames
    assert database["video_test_0000001"]["frame"] == 165
    assert database["video_test_0000001"]["subset"] == "validation"


def test_convert_subset_map_and_keep_all():
    database, _ = convert_actionformer_database(
        ACTIONFORMER["database"], subset_map={"Validation": "validation", "Test": "test"}, drop_videos=()
    )
    assert [v["subset"] for v in database.values()] == ["validation", "test", "test", "test"]


def test_convert_errors():
    with pytest.raises(ValueError, match="'Test'"):
        convert_actionformer_database(ACTIONFORMER["database"], subset_map={"Validation": "training"})
    clash = {"v": {"subset": "Test", "duration": 1.0, "fps": 30.0,
                   "annotations": [anno("A", 0, [0.1, 0.2]), anno("B", 0, [0.3, 0.4])]}}
    with pytest.raises(ValueError, match="label_id 0"):
        convert_actionformer_database(clash)
    with pytest.raises(ValueError, match="'fps'"):
        convert_actionformer_database({"v": {"subset": "Test", "duration": 1.0}})


def test_convert_file_round_trips_into_the_dataset(tmp_path):
    src = tmp_path / "thumos14.json"
    src.write_text(json.dumps(ACTIONFORMER))
    out, class_map = tmp_path / "ann" / "thumos_14_anno.json", tmp_path / "ann" / "category_idx.txt"
    counts = convert_actionformer_file(str(src), str(out), str(class_map))
    assert counts == {"training": 1, "validation": 1}
    assert class_map.read_text().splitlines() == ["Zeta", "Mid", "Alpha"]
    ds = ThumosPaddingDataset(ann_file=str(out), subset_name="training", data_path="", pipeline=[],
                              class_map=str(class_map), feature_stride=4)
    sample = ds.sample_dict(0)
    assert sample["gt_labels"].tolist() == [0, 2]
    assert sample["gt_segments"].tolist() == [[30 / 4, 75 / 4], [90 / 4, 120 / 4]]


def test_convert_file_names_bad_source(tmp_path):
    src = tmp_path / "broken.json"
    src.write_text("{")
    with pytest.raises(ValueError, match="broken.json"):
        convert_actionformer_file(str(src), str(tmp_path / "o.json"), str(tmp_path / "c.txt"))


def test_cli(tmp_path, monkeypatch, capsys):
    src = tmp_path / "thumos14.json"
    src.write_text(json.dumps(ACTIONFORMER))
    out, class_map = tmp_path / "o.json", tmp_path / "c.txt"
    script = os.path.join(ROOT, "tools/prepare_data/thumos/convert_actionformer_anno.py")
    argv = [script, "--src", str(src), "--out", str(out), "--class-map", str(class_map),
            "--subset-map", "Validation=validation,Test=test", "--drop-videos"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(script, run_name="__main__")
    assert "test: 3, validation: 1" in capsys.readouterr().out
    database = json.loads(out.read_text())["database"]
    assert sorted(v["subset"] for v in database.values()) == ["test", "test", "test", "validation"]


def test_find_missing_files(tmp_path):
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps({"database": {
        "x": {"subset": "training"}, "y": {"subset": "training"}, "z": {"subset": "validation"}}}))
    (tmp_path / "x.npy").write_bytes(b"")
    counts, missing = find_missing_files(str(ann), str(tmp_path))
    assert counts == {"training": 2, "validation": 1} and missing == ["y", "z"]
    assert find_missing_files(str(ann), str(tmp_path), subsets=["validation"]) == ({"validation": 1}, ["z"])
