"""Bad inputs to the mAP evaluator: each error names the file, key or entry at fault."""
import json

import pytest

from opentad.evaluations import mAP, remove_duplicate_annotations

GT = {"database": {"v": {"subset": "validation", "annotations": [{"segment": [0, 10], "label": "A"}]}}}


def make(pred, gt=GT, **kw):
    kw.setdefault("tiou_thresholds", [0.5])
    return mAP(ground_truth_filename=gt, prediction_filename=pred, subset=kw.pop("subset", "validation"), **kw)


def test_missing_prediction_file_is_named(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match="prediction_filename.*nope.json"):
        make(str(path))


def test_missing_ground_truth_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="ground_truth_filename.*gone.json"):
        make({"results": {}}, gt=str(tmp_path / "gone.json"))


def test_malformed_json_is_named(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"results": {"v": [')
    with pytest.raises(ValueError, match="prediction_filename.*broken.json.*not a valid JSON"):
        make(str(path))


def test_missing_results_key_lists_what_was_found(tmp_path):
    path = tmp_path / "pred.json"
    path.write_text(json.dumps({"database": {}}))
    with pytest.raises(ValueError, match=r"no top-level 'results' key \(found: \['database'\]\)"):
        make(str(path))


@pytest.mark.parametrize(
    "entry, needle",
    [
        ({"segment": [0, 1], "label": "A"}, "KeyError: 'score'"),
        ({"segment": [0], "label": "A", "score": 0.5}, "IndexError"),
        ({"segment": [0, "x"], "label": "A", "score": 0.5}, "ValueError"),
    ],
)
def test_malformed_entry_names_video_and_index(entry, needle):
    pred = {"results": {"v": [{"segment": [0, 10], "label": "A", "score": 1.0}, entry]}}
    with pytest.raises(ValueError, match=f"video 'v', prediction 1 .*{needle}"):
        make(pred)


def test_nan_score_is_rejected():
    with pytest.raises(ValueError, match="NaN score.*'v'"):
        make({"results": {"v": [{"segment": [0, 10], "label": "A", "score": float("nan")}]}})


def test_prediction_of_wrong_type():
    with pytest.raises(TypeError, match="prediction_filename"):
        make([1, 2, 3])


def test_unknown_subset_lists_the_subsets_present():
    with pytest.raises(ValueError, match=r"subset 'test'.*\['validation'\]"):
        make({"results": {}}, subset="test")


def test_ground_truth_without_database_key():
    with pytest.raises(ValueError, match="ground_truth_filename.*'database'"):
        make({"results": {}}, gt={"taxonomy": []})


@pytest.mark.parametrize("thresholds", [[], [0.0], [1.5], [-0.1, 0.5]])
def test_thresholds_must_be_in_unit_interval(thresholds):
    with pytest.raises(ValueError, match="tiou_thresholds"):
        make({"results": {}}, tiou_thresholds=thresholds)


def test_missing_blocked_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="blocked_videos.*blk.json"):
        make({"results": {}}, blocked_videos=str(tmp_path / "blk.json"))


def test_unknown_labels_and_videos_are_reported(caplog):
    pred = {"results": {"v": [{"segment": [0, 10], "label": "Z", "score": 1.0}],
                        "w": [{"segment": [0, 10], "label": "A", "score": 1.0}]}}
    ev = make(pred)
    assert ev.prediction.extra_videos == ["w"]
    assert "not in the 'validation' ground truth" in caplog.text
    assert "1 prediction(s) have labels that are not ground-truth classes" in caplog.text


def test_remove_duplicate_annotations_compares_with_kept_only():
    # b is within 1e-3 of a (dropped); c is within 1e-3 of b but not of a, so it is kept.
    anns = [{"segment": [0.0, 5.0], "label": "A"}, {"segment": [0.0008, 5.0], "label": "A"},
            {"segment": [0.0016, 5.0], "label": "A"}, {"segment": [0.0, 5.0], "label": "B"},
            {"segment": [3.0, 2.0], "label": "A"}]
    kept = remove_duplicate_annotations(anns)
    assert [a["segment"][0] for a in kept] == [0.0, 0.0016, 0.0]
    assert [a["label"] for a in kept] == ["A", "A", "B"]
