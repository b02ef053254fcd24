"""check_annotations / classify_segment: every kind of problem on a hand-made annotation file, counted and named."""
import json

import pytest

from opentad.datasets.data_check import SHOWN, check_annotations, classify_segment


@pytest.mark.parametrize("segment, kind", [
    ([1.0, 2.0], "ok"), ([0.0, 10.0], "ok"),  # touching both ends is inside
    ([-1.0, 2.0], "outside"), ([9.0, 10.5], "outside"),  # overlaps the 10 s video, reaches past an end
    ([2.0, 2.0], "end <= start"), ([3.0, 2.0], "end <= start"),
    ([10.0, 12.0], "outside the video"), ([-3.0, 0.0], "outside the video"),
    ([1.0], "not two numbers"), ([1.0, 2.0, 3.0], "not two numbers"), (None, "not two numbers"),
    (["a", 2.0], "not two numbers"), ([float("nan"), 2.0], "not two numbers"), ([1.0, float("inf")], "not two numbers"),
])
def test_classify_segment(segment, kind):
    assert classify_segment(segment, 10.0) == kind


DATABASE = {
    "good": {"subset": "training", "duration": 10.0, "annotations": [{"label": "A", "segment": [1, 2]}]},
    "bad": {"subset": "training", "duration": 10.0, "annotations": [
        {"label": "A", "segment": [3, 3]}, {"label": "Z", "segment": [9, 11]}, {"label": "Z", "segment": [12, 13]}]},
    "nodur": {"subset": "validation", "annotations": []},
    "zero": {"subset": "validation", "duration": 0, "annotations": []},
}


@pytest.fixture
def files(tmp_path):
    ann = tmp_path / "anno.json"
    ann.write_text(json.dumps({"database": DATABASE}))
    (tmp_path / "classes.txt").write_text("A\nB\n")
    (tmp_path / "feats").mkdir()
    (tmp_path / "feats" / "v_good.npy").write_bytes(b"")
    return str(ann), str(tmp_path / "classes.txt"), str(tmp_path / "feats")


def test_report_counts_and_names_each_problem(files):
    ann, class_map, feats = files
    report = check_annotations(ann, class_map=class_map, data_path=feats, prefix="v_")
    assert report.videos == {"training": 2, "validation": 2} and report.segments == 4
    assert report.bad_segments == [("bad", [3, 3], "end <= start"), ("bad", [12, 13], "outside the video")]
    assert report.outside == [("bad", [9, 11], 10.0)]
    assert report.unknown_labels == {"Z": ["bad", "bad"]}
    assert report.bad_videos == [("nodur", "duration=None"), ("zero", "duration=0.0")]
    assert report.missing_files == ["bad", "nodur", "zero"] and not report.ok
    lines = report.lines()
    assert len(lines) == 6
    assert lines[0] == "videos: training: 2, validation: 2; segments: 4"
    assert lines[1].startswith("unusable segments (skipped by the datasets): 2 (bad [3, 3] end <= start;")
    assert "'Z' in 2 video(s), e.g. bad" in lines[3] and lines[5].startswith("missing files: 3 (bad; nodur; zero)")


def test_optional_checks_and_subsets(files):
    ann, _, _ = files
    report = check_annotations(ann, subsets=["training"])  # no class map, no data folder
    assert report.videos == {"training": 2} and report.unknown_labels == {} and report.missing_files == []
    assert len(report.bad_segments) == 2 and not report.ok
    seen = []
    check_annotations(ann, progress=lambda items: seen.extend(items) or seen)
    assert [name for name, _ in seen] == list(DATABASE)


def test_offenders_quoted_at_most_shown(tmp_path):
    database = {f"v{i}": {"subset": "s", "duration": 1.0, "annotations": []} for i in range(SHOWN + 2)}
    (tmp_path / "a.json").write_text(json.dumps({"database": database}))
    line = check_annotations(str(tmp_path / "a.json"), data_path=str(tmp_path)).lines()[-1]
    assert line == f"missing files: {SHOWN + 2} (" + "; ".join(f"v{i}" for i in range(SHOWN)) + "; ...)"


def test_unreadable_files_are_named(tmp_path, files):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        check_annotations(str(tmp_path / "nope.json"))
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        check_annotations(files[0], class_map=str(tmp_path / "nope.txt"))
