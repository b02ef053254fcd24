"""Bad inputs to the mAP evaluator: each error names the file, key or entry at fault."""
import json
import logging

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


# --------------------------------------------------------------------------- ground truth checked as training does
TWO_CLASSES = {"database": {
    "v1": {"subset": "test", "annotations": [{"segment": [1.0, 4.0], "label": "A"},
                                             {"segment": [10.0, 12.0], "label": "B"}]},
    "v2": {"subset": "test", "annotations": [{"segment": [5.0, 9.0], "label": "A"}]},
}}
PERFECT = {"results": {"v1": [{"segment": [1.0, 4.0], "label": "A", "score": 0.9},
                              {"segment": [10.0, 12.0], "label": "B", "score": 0.8}],
                       "v2": [{"segment": [5.0, 9.0], "label": "A", "score": 0.7}]}}


def with_actions(gt, video, *actions):
    """A copy of ``gt`` with ``actions`` ``(start, end, label)`` appended to ``video``."""
    out = json.loads(json.dumps(gt))
    out["database"][video]["annotations"] += [{"segment": [s, e], "label": lab} for s, e, lab in actions]
    return out


def test_ground_truth_label_outside_the_class_map_is_an_error(tmp_path):
    gt = with_actions(TWO_CLASSES, "v2", (13.0, 15.0, "Typo"), (16.0, 18.0, "Typo"), (20.0, 21.0, "Other"))
    path = tmp_path / "test_anno.json"
    path.write_text(json.dumps(gt))
    (tmp_path / "classes.txt").write_text("A\nB\n")
    for class_map in (["A", "B"], str(tmp_path / "classes.txt")):
        with pytest.raises(ValueError) as info:
            make(PERFECT, gt=str(path), subset="test", class_map=class_map)
        message = str(info.value)
        assert "\n" not in message and "test_anno.json" in message
        assert "3 ground-truth segment(s) of 1 video(s)" in message
        assert "['Other', 'Typo']" in message and "'v2'" in message and "ignored_labels" in message


def test_without_the_check_the_unknown_label_is_a_phantom_class_with_ap_0():
    """Why the check exists: upstream's rule makes the typo a class the model never predicts (mean 2/3, not 1)."""
    gt = with_actions(TWO_CLASSES, "v2", (13.0, 15.0, "Typo"))
    metrics = make(PERFECT, gt=gt, subset="test").evaluate()
    assert metrics["per_class_AP"]["Typo"]["average"] == 0.0
    assert metrics["average_mAP"] == pytest.approx(2 / 3)
    # labels listed in ignored_labels are no classes and pass the check: the perfect predictions score 1
    checked = make(PERFECT, gt=gt, subset="test", class_map=["A", "B"], ignored_labels=["Ambiguous", "Typo"])
    assert checked.evaluate()["average_mAP"] == pytest.approx(1.0)
    assert sorted(checked.evaluate()["per_class_AP"]) == ["A", "B"]


def test_class_map_file_errors_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="class_map.*nothing.txt"):
        make(PERFECT, gt=TWO_CLASSES, subset="test", class_map=str(tmp_path / "nothing.txt"))
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="class_map.*empty.txt.*no class"):
        make(PERFECT, gt=TWO_CLASSES, subset="test", class_map=str(tmp_path / "empty.txt"))


def test_reversed_segments_are_dropped_with_one_counted_warning(tmp_path, caplog):
    gt = with_actions(TWO_CLASSES, "v1", (8.0, 6.0, "A"), (14.0, 14.0, "B"))
    gt = with_actions(gt, "v2", (3.0, 2.0, "B"), (30.0, 20.0, "Ambiguous"))  # ignored labels are not counted
    path = tmp_path / "anno.json"
    path.write_text(json.dumps(gt))
    with caplog.at_level(logging.WARNING, logger="opentad"):
        metrics = make(PERFECT, gt=str(path), subset="test", class_map=["A", "B"]).evaluate()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "anno.json" in warnings[0] and "3 ground-truth segment(s) of 2 video(s)" in warnings[0]
    assert "end <= start" in warnings[0] and "v1 segment=[8.0, 6.0]" in warnings[0]
    # they are not evaluated: the same numbers as the file without them (all predictions perfect)
    reference = make(PERFECT, gt=TWO_CLASSES, subset="test").evaluate()
    assert metrics == reference and metrics["average_mAP"] == pytest.approx(1.0)
