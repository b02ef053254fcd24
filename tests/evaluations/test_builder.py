"""check_ground_truth: the evaluation's ground truth is checked without predictions, as the evaluator checks it.

Reference: the error the evaluator itself raises when it is built with
predictions (the message must be the same, so a run's set-up reports exactly
what the evaluation after an epoch would have reported), and hand-made files
for each kind of bad ground truth (all a ``GroundTruthError``).
"""
import json
import logging

import pytest

from opentad.evaluations import GroundTruthError, check_ground_truth, mAP

GT = {"database": {
    "v1": {"subset": "test", "annotations": [{"segment": [1.0, 4.0], "label": "A"},
                                             {"segment": [10.0, 12.0], "label": "B"}]},
    "v2": {"subset": "test", "annotations": [{"segment": [5.0, 9.0], "label": "A"},
                                             {"segment": [13.0, 15.0], "label": "Typo"},
                                             {"segment": [9.0, 8.0], "label": "B"}]},
    "v3": {"subset": "train", "annotations": [{"segment": [1.0, 2.0], "label": "Other"}]},
}}
SECTION = dict(type="mAP", subset="test", tiou_thresholds=[0.3, 0.5])


@pytest.fixture
def gt_file(tmp_path):
    path = tmp_path / "eval_anno.json"
    path.write_text(json.dumps(GT))
    return str(path)


def test_the_same_error_as_the_evaluation_before_any_prediction(gt_file):
    cfg = dict(SECTION, ground_truth_filename=gt_file)
    with pytest.raises(GroundTruthError) as at_setup:
        check_ground_truth(cfg, class_map=["A", "B"])
    with pytest.raises(GroundTruthError) as at_evaluation:  # what the test engine builds after inference
        mAP(**{k: v for k, v in cfg.items() if k != "type"}, prediction_filename={"results": {}}, class_map=["A", "B"])
    assert str(at_setup.value) == str(at_evaluation.value)
    message = str(at_setup.value)
    assert isinstance(at_setup.value, ValueError) and "\n" not in message
    assert message.startswith(f"ground_truth_filename {gt_file!r}: 1 ground-truth segment(s) of 1 video(s) in subset "
                              "'test' have labels not in the class map ['Typo'] (e.g. video 'v2'")


def test_what_decides_the_class_map_and_the_labels_checked(gt_file, caplog):
    cfg = dict(SECTION, ground_truth_filename=gt_file)
    with caplog.at_level(logging.DEBUG):
        assert check_ground_truth(None, class_map=["A"]) is None  # no evaluation section
        check_ground_truth(cfg)  # no class map at all: not checked, as upstream
        check_ground_truth(dict(cfg, class_map=["A", "B", "Typo"]), class_map=["A"])  # the section's map wins
        check_ground_truth(dict(cfg, ignored_labels=["Typo"]), class_map=["A", "B"])
        check_ground_truth(dict(cfg, blocked_videos=["v2"]), class_map=["A", "B"])
        check_ground_truth(dict(cfg, subset="train"), class_map=["Other"])
    assert caplog.records == []  # the reversed segment of v2 is the evaluation's warning, not the check's
    with pytest.raises(GroundTruthError, match=r"not in the class map \['B', 'Typo'\]"):
        check_ground_truth(dict(cfg, class_map=["A"]), class_map=["A", "B", "Typo"])
    with pytest.raises(GroundTruthError, match=r"not in the class map \['Other'\]"):
        check_ground_truth(dict(cfg, subset="train"), class_map=["A", "B"])


@pytest.mark.parametrize("content, needle", [
    ("{not json", "is not a valid JSON file"),
    (json.dumps({"videos": {}}), "has no top-level 'database' key (found: ['videos'])"),
    (json.dumps({"database": ["v1"]}), "'database' must map video names to entries, got list"),
    (json.dumps({"database": {"v1": {"subset": "test"}}}), "video 'v1' of subset 'test' lacks 'annotations'"),
    (json.dumps({"database": {"v1": {"annotations": []}}}), "video 'v1' lacks 'subset'"),
    # another subset's video without annotations is fine (Ego4D's test videos): the evaluated subset is empty
    (json.dumps({"database": {"v1": {"subset": "val"}}}), "no ground-truth action in subset 'test'"),
    (json.dumps({"database": {"v1": {"subset": "test", "annotations": [{"label": "A"}]}}}),
     "malformed annotation in video 'v1': KeyError"),
    (json.dumps({"database": {"v1": {"subset": "val", "annotations": []}}}),
     "no ground-truth action in subset 'test' (subsets present: ['val'])"),
])
def test_every_bad_ground_truth_file_is_a_ground_truth_error_naming_it(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(GroundTruthError) as info:
        check_ground_truth(dict(SECTION, ground_truth_filename=str(path)), class_map=["A"])
    message = str(info.value)
    assert message.startswith("ground_truth_filename") and repr(str(path)) in message and needle in message, message
    assert "\n" not in message


def test_a_missing_file_stays_a_file_not_found_error(tmp_path):
    missing = str(tmp_path / "nowhere.json")
    with pytest.raises(FileNotFoundError, match=f"ground_truth_filename: file not found: {missing!r}"):
        check_ground_truth(dict(SECTION, ground_truth_filename=missing), class_map=["A"])
