"""tools/prepare_data/custom/convert_annotations.py: a table of actions to OpenTAD's annotation files and a config.

Hand-worked reference (``--fps 30``, 4 frames per feature row)::

    v_a  training    no duration: 75 feature rows * 4 / 30 = 10.0 s, frame 300; Run [1, 3], Jump [2, 2.5]
    v_b  validation  duration column 12.5 s, frame round(12.5 * 30) = 375; Run [0.5, 4]
    v_c  validation  fps column 25: 50 rows * 4 / 25 = 8.0 s, frame 200; declared, no action
    v_d  (default subset training), --durations 7.0 s, frame 210; Wave [1, 2]

The class map is the sorted labels: Jump, Run, Wave.
"""
import json

import numpy as np
import pytest

from opentad.datasets import build_dataset
from opentad.models import build_detector
from opentad.utils.config import load_config

CSV = """video,start,end,label,subset,duration,fps
v_a,1.0,3.0,Run,training,,
v_a,2.0,2.5,Jump,training,,
v_b,0.5,4.0,Run,validation,12.5,
v_c,,,,validation,,25
v_d,1,2,Wave,,,
"""
ROWS = {"v_a": 75, "v_b": 93, "v_c": 50, "v_d": 52}  # feature rows; v_b and v_d take their durations from elsewhere
EXPECTED = {
    "v_a": {"subset": "training", "duration": 10.0, "frame": 300, "annotations": [
        {"label": "Run", "segment": [1.0, 3.0]}, {"label": "Jump", "segment": [2.0, 2.5]}]},
    "v_b": {"subset": "validation", "duration": 12.5, "frame": 375, "annotations": [
        {"label": "Run", "segment": [0.5, 4.0]}]},
    "v_c": {"subset": "validation", "duration": 8.0, "frame": 200, "annotations": []},
    "v_d": {"subset": "training", "duration": 7.0, "frame": 210, "annotations": [
        {"label": "Wave", "segment": [1.0, 2.0]}]},
}


@pytest.fixture
def files(tmp_path):
    """The table (CSV and the same rows as JSON), a durations table and 6-channel features."""
    (tmp_path / "actions.csv").write_text(CSV)
    rows = [dict(video="v_a", start=1.0, end=3.0, label="Run", subset="training"),
            dict(video="v_a", start=2.0, end=2.5, label="Jump", subset="training"),
            dict(video="v_b", start=0.5, end=4.0, label="Run", subset="validation", duration=12.5),
            dict(video="v_c", start=None, end=None, label=None, subset="validation", fps=25),
            dict(video="v_d", start=1, end=2, label="Wave")]
    (tmp_path / "actions.json").write_text(json.dumps(rows))
    (tmp_path / "durations.csv").write_text("video,duration\nv_d,7.0\n")
    feats = tmp_path / "feats"
    feats.mkdir()
    for name, count in ROWS.items():
        np.save(feats / f"{name}.npy", np.full((count, 6), 0.5, dtype=np.float32))
    return tmp_path


@pytest.mark.parametrize("table", ["actions.csv", "actions.json"])
def test_database_from_csv_or_json(custom_tools, files, table):
    convert = custom_tools.convert
    rows = convert.read_table(str(files / table))
    database = convert.build_database(rows, fps=30.0, default_subset="training",
                                      durations=convert.read_durations(str(files / "durations.csv")),
                                      features=str(files / "feats"), feature_stride=4)
    assert database == EXPECTED
    assert list(database) == ["v_a", "v_b", "v_c", "v_d"]  # order of first appearance


@pytest.mark.parametrize("text, message", [
    ("video,start,end\nv,1,2\n", r"actions.csv:2: no \['label'\] \(keys found: \['end', 'start', 'video'\]"),
    ("video,start,end,label\nv_a,1,x,Run\n", r"actions.csv:2: end='x' of video 'v_a' is not a number"),
    ("video,start,end,label\nv_a,1,nan,Run\n", r"end='nan' of video 'v_a' is not finite"),
    ("video,start,end,label\nv_a,1,,Run\n", r"actions.csv:2: video 'v_a' has a blank start, end or label"),
    ("video,start,end,label,subset\nv_a,1,2,Run,training\nv_a,3,4,Run,validation\n",
     r"actions.csv:3: video 'v_a' has subset 'validation' here and 'training' on an earlier row"),
    ("video,start,end,label\nv_a,1,2,Run\nv_x,1,2,Run\n",
     r"actions.csv:3: video 'v_x' has no duration given and no feature file .*v_x.npy"),
])
def test_bad_rows_name_the_row_and_the_video(custom_tools, files, text, message):
    (files / "actions.csv").write_text(text)
    convert = custom_tools.convert
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        convert.build_database(convert.read_table(str(files / "actions.csv")), fps=30.0,
                               default_subset="training", features=str(files / "feats"))


def test_no_fps_and_no_duration_are_named(custom_tools, files):
    convert = custom_tools.convert
    rows = convert.read_table(str(files / "actions.csv"))
    with pytest.raises(ValueError, match=r"actions.csv:2: video 'v_a' has no fps \(an fps column or --fps\)"):
        convert.build_database(rows, fps=None, default_subset="training", features=str(files / "feats"))
    with pytest.raises(ValueError, match=r"video 'v_a' has no duration \(a duration column, --durations, or"):
        convert.build_database(rows, fps=30.0, default_subset="training")


def test_main_writes_files_and_a_config_the_datasets_and_model_read(custom_tools, files, capsys):
    """The written config derives from ActionFormer's THUMOS recipe; its validation dataset gives v_b's Run
    [0.5, 4] s -> frames int(0.5 / 12.5 * 375) = 15, int(4 / 12.5 * 375) = 120 -> snippets 3.75, 30 (stride 4)."""
    out, config = files / "annotations", files / "configs" / "my_data.py"
    status = custom_tools.convert.main([
        "--input", str(files / "actions.csv"), "--out", str(out), "--name", "my_data", "--fps", "30",
        "--durations", str(files / "durations.csv"), "--features", str(files / "feats"), "--config", str(config)])
    assert status == 0
    with open(out / "my_data_anno.json", encoding="utf8") as f:
        assert json.load(f) == {"version": "my_data", "database": EXPECTED}
    assert (out / "category_idx.txt").read_text() == "Jump\nRun\nWave\n"
    report = capsys.readouterr().out
    assert "classes without ground truth: 2 of 3 classes have no action in subset 'validation'" in report
    cfg = load_config(str(config))
    assert (cfg.model.rpn_head.num_classes, cfg.model.projection.in_channels) == (3, 6)
    assert cfg.evaluation.subset == "validation" and cfg.evaluation.tiou_thresholds == [0.3, 0.4, 0.5, 0.6, 0.7]
    val = build_dataset(cfg.dataset.val)
    assert [d[0] for d in val.data_list] == ["v_b"]
    sample = val[0]
    assert sample["gt_segments"].tolist() == [[3.75, 30.0]] and sample["gt_labels"].tolist() == [1]
    assert sample["inputs"].shape == (6, ROWS["v_b"])
    assert [d[0] for d in build_dataset(cfg.dataset.test).data_list] == ["v_b", "v_c"]
    assert [d[0] for d in build_dataset(cfg.dataset.train).data_list] == ["v_a", "v_d"]
    build_detector(cfg.model)  # the model's keys bind (the datasets' bound above)


def test_an_existing_class_map_keeps_its_order(custom_tools, files):
    (files / "classes.txt").write_text("Wave\nRun\nJump\nSit\n")
    out = files / "annotations"
    custom_tools.convert.main(["--input", str(files / "actions.csv"), "--out", str(out), "--fps", "30",
                               "--durations", str(files / "durations.csv"), "--features", str(files / "feats"),
                               "--class-map", str(files / "classes.txt")])
    assert (out / "category_idx.txt").read_text() == "Wave\nRun\nJump\nSit\n"


def test_a_config_from_an_activitynet_base_sets_only_the_keys_it_has(custom_tools, files):
    """The ActivityNet resize base takes no feature_stride / offset_frames and is class-agnostic upstream: the
    written config sets class_agnostic=False and nothing of the snippet grid; its datasets build."""
    config = files / "anet_like.py"
    custom_tools.convert.main([
        "--input", str(files / "actions.csv"), "--out", str(files / "annotations"), "--fps", "30",
        "--durations", str(files / "durations.csv"), "--features", str(files / "feats"), "--config", str(config),
        "--recipe", "configs/_base_/datasets/activitynet-1.3/features_tsp_resize.py"])
    cfg = load_config(str(config))
    assert "feature_stride" not in cfg.dataset.train and cfg.dataset.train.class_agnostic is False
    val = build_dataset(cfg.dataset.val)
    assert type(val).__name__ == "AnetResizeDataset" and [d[0] for d in val.data_list] == ["v_b"]
