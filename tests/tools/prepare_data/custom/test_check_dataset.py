"""tools/prepare_data/custom/check_dataset.py: one line per kind of problem, with counts and first offenders.

The hand-made dataset (class map Run, Jump, Wave, Sit; evaluation subset ``validation``)::

    t1  training    Run [1, 3]; Jump [5, 4] start >= end; Hop [1, 2] unknown; Ambiguous (not counted)
    t2  training    Run [-1, 2] and Run [8, 11] outside [0, 10]; Wave [1, 2]; features hold a NaN
    v1  validation  Run [1, 5]; Run [1.0005, 5] duplicate (within 1e-3 s); Jump [2, 3]; Hop [4, 6] unknown;
                    features are 1-D
    v2  validation  Jump [1, "x"] malformed; Run [0, 1]
    v3  validation  no frame: a bad video (its actions are not read)
    v4  validation  Sit [1, 2], blocked and without features: Sit has no ground truth where it is evaluated
    v5  validation  Wave [1, 2], no feature file

14 actions are read (Ambiguous and v3's left out); 4 bad segments; Hop twice; v5 missing of the 6 videos
not blocked; Sit without ground truth in validation; 1 duplicate; 2 bad feature files.
"""
import json

import numpy as np
import pytest

DATABASE = {
    "t1": {"subset": "training", "duration": 10, "frame": 300, "annotations": [
        {"label": "Run", "segment": [1, 3]}, {"label": "Jump", "segment": [5, 4]},
        {"label": "Hop", "segment": [1, 2]}, {"label": "Ambiguous", "segment": [2, 3]}]},
    "t2": {"subset": "training", "duration": 10, "frame": 300, "annotations": [
        {"label": "Run", "segment": [-1, 2]}, {"label": "Run", "segment": [8, 11]},
        {"label": "Wave", "segment": [1, 2]}]},
    "v1": {"subset": "validation", "duration": 20, "frame": 600, "annotations": [
        {"label": "Run", "segment": [1, 5]}, {"label": "Run", "segment": [1.0005, 5]},
        {"label": "Jump", "segment": [2, 3]}, {"label": "Hop", "segment": [4, 6]}]},
    "v2": {"subset": "validation", "duration": 5, "frame": 150, "annotations": [
        {"label": "Jump", "segment": [1, "x"]}, {"label": "Run", "segment": [0, 1]}]},
    "v3": {"subset": "validation", "duration": 5, "annotations": [{"label": "Run", "segment": [0, 1]}]},
    "v4": {"subset": "validation", "duration": 5, "frame": 150, "annotations": [{"label": "Sit", "segment": [1, 2]}]},
    "v5": {"subset": "validation", "duration": 5, "frame": 150, "annotations": [{"label": "Wave", "segment": [1, 2]}]},
}


@pytest.fixture
def data(tmp_path):
    (tmp_path / "anno.json").write_text(json.dumps({"database": DATABASE}))
    (tmp_path / "classes.txt").write_text("Run\nJump\nWave\nSit\n")
    (tmp_path / "blocked.txt").write_text("v4\n")
    feats = tmp_path / "feats"
    feats.mkdir()
    for name in ("t1", "t2", "v1", "v2", "v3"):
        np.save(feats / f"{name}.npy", np.zeros((8, 4), dtype=np.float32))
    broken = np.zeros((8, 4), dtype=np.float32)
    broken[3, 1] = np.nan
    np.save(feats / "t2.npy", broken)
    np.save(feats / "v1.npy", np.zeros(8, dtype=np.float32))
    return dict(ann_file=str(tmp_path / "anno.json"), class_map=str(tmp_path / "classes.txt"),
                data_path=str(feats), block_list=str(tmp_path / "blocked.txt"))


def test_each_kind_is_one_line_with_counts_and_first_offenders(custom_tools, data):
    findings = custom_tools.check.check_dataset(**data, eval_subset="validation", scan_features=True)
    by_kind = {f.kind: f for f in findings}
    assert by_kind["dataset"].detail == "7 videos (training 2, validation 5), 14 actions, 4 classes, 1 blocked"
    assert (by_kind["videos"].level, by_kind["videos"].offenders) == ("error", ["v3 (duration=5, frame=None)"])
    assert by_kind["bad segments"].line() == (
        "WARNING bad segments: 4 of 14 actions (the datasets skip them): t1 [5, 4] (start >= end), "
        "t2 [-1, 2] (outside [0, 10] s), t2 [8, 11] (outside [0, 10] s), v2 [1, 'x'] (malformed)")
    assert by_kind["unknown labels"].line() == (
        f"ERROR   unknown labels: 2 actions with 1 label(s) not in {data['class_map']} (4 classes): "
        "'Hop' x2 (first in t1)")
    assert by_kind["missing files"].line() == (
        f"ERROR   missing files: 1 of 6 videos (not blocked) have no {data['data_path']}/<video>.npy "
        "(leave them out: --write-block-list): v5")
    assert by_kind["classes without ground truth"].line() == (
        "WARNING classes without ground truth: 1 of 4 classes have no action in subset 'validation' "
        "(no AP: left out of the mAP mean): Sit")
    assert by_kind["duplicate segments"].offenders == ["v1 'Run' [1.0005, 5]"]
    assert by_kind["non-finite features"].offenders == ["t2 (1 NaN/inf values)", "v1 (shape (8,), expected [T, C])"]
    assert [f.kind for f in findings] == ["dataset", "videos", "bad segments", "unknown labels", "missing files",
                                          "non-finite features", "classes without ground truth",
                                          "duplicate segments"]


def test_a_clean_dataset_is_all_ok_and_exits_zero(custom_tools, data, tmp_path, capsys):
    clean = {"a": {"subset": "training", "duration": 10, "frame": 300, "annotations": [
                 {"label": "Run", "segment": [1, 3]}]},
             "b": {"subset": "validation", "duration": 10, "frame": 300, "annotations": [
                 {"label": "Run", "segment": [0, 10]}]}}
    (tmp_path / "clean.json").write_text(json.dumps({"database": clean}))
    (tmp_path / "one.txt").write_text("Run\n")
    for name in clean:
        np.save(tmp_path / "feats" / f"{name}.npy", np.ones((4, 2), dtype=np.float32))
    argv = ["--ann", str(tmp_path / "clean.json"), "--class-map", str(tmp_path / "one.txt"),
            "--data", data["data_path"], "--scan-features"]
    assert custom_tools.check.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and all(line.startswith("OK      ") for line in lines), lines
    assert custom_tools.check.main(argv + ["--eval-subset", "test"]) == 1
    assert "ERROR   classes without ground truth: no video of evaluation subset 'test'" in capsys.readouterr().out


def test_write_block_list_then_the_check_passes_the_missing_files(custom_tools, data, tmp_path, capsys):
    """Only v5's file is missing among the checked errors once v3 and the unknown label are gone."""
    database = {k: v for k, v in DATABASE.items() if k in ("t1", "v5")}
    database["t1"] = dict(database["t1"], annotations=database["t1"]["annotations"][:2])
    (tmp_path / "small.json").write_text(json.dumps({"database": database}))
    argv = ["--ann", str(tmp_path / "small.json"), "--class-map", data["class_map"], "--data", data["data_path"]]
    assert custom_tools.check.main(argv) == 1
    assert custom_tools.check.main(argv + ["--write-block-list"]) == 0
    assert (tmp_path / "feats" / "missing_files.txt").read_text() == "v5\n"
    findings = custom_tools.check.check_dataset(str(tmp_path / "small.json"), data["class_map"], data["data_path"],
                                                block_list=str(tmp_path / "feats" / "missing_files.txt"))
    assert [f.level for f in findings if f.kind == "missing files"] == ["ok"]


def test_the_config_names_the_files_and_the_feature_file_names(custom_tools, data, tmp_path):
    (tmp_path / "cfg.py").write_text(
        f"dataset = dict(train=dict(ann_file={data['ann_file']!r}, class_map={data['class_map']!r}, "
        f"data_path={data['data_path']!r}, block_list=None, "
        "pipeline=[dict(type='LoadFeats', feat_format='npy', prefix='f_', suffix='_rgb')]))\n"
        "evaluation = dict(subset='test')\n")
    keys = custom_tools.check.files_from_config(str(tmp_path / "cfg.py"))
    assert keys == dict(ann_file=data["ann_file"], class_map=data["class_map"], data_path=data["data_path"],
                        block_list=None, eval_subset="test", prefix="f_", suffix="_rgb.npy")


def test_more_offenders_than_shown_end_with_dots(custom_tools):
    finding = custom_tools.check.Finding("missing files", "error", 7, "7 of 7", [f"v{i}" for i in range(7)])
    assert finding.line() == "ERROR   missing files: 7 of 7: v0, v1, v2, v3, v4, ..."


def test_a_missing_annotation_file_is_one_line_naming_it(custom_tools, tmp_path, capsys):
    (tmp_path / "one.txt").write_text("Run\n")
    missing = str(tmp_path / "nowhere.json")
    argv = ["--ann", missing, "--class-map", str(tmp_path / "one.txt"), "--data", str(tmp_path)]
    assert custom_tools.check.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("check_dataset: ") and missing in err and err.count("\n") == 1
