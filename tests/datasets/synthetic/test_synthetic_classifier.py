"""classifiers/video_classifier.json: StandardClassifier's layout, checked against the generated annotations."""
import json
import os

import numpy as np
import pytest
import torch

from opentad.datasets.synthetic import CLASSIFIER_FILE, MANIFEST_FILE, generate_dataset, settings_from_preset
from opentad.datasets.synthetic.classifier import ABSENT_CEILING, PRESENT_FLOOR
from opentad.models.utils.post_processing import build_classifier

SMALL = dict(write_videos=False, num_train=8, num_test=8, feat_dim=8, min_duration=6.0, max_duration=12.0)


def generate(tmp_path, **overrides):
    out = tmp_path / "synthetic-thumos"
    report = generate_dataset(settings_from_preset("default", dict(SMALL, **overrides)), str(out))
    database = json.loads((out / "annotations/thumos_14_anno.json").read_text())["database"]
    return out, database, report


def action_time(annotations):
    """Seconds of action per class, ``Ambiguous`` left out."""
    total = {}
    for a in annotations:
        if a["label"] != "Ambiguous":
            total[a["label"]] = total.get(a["label"], 0.0) + a["segment"][1] - a["segment"][0]
    return total


@pytest.mark.parametrize("classes_per_video", [0, 1])
def test_every_video_scored_present_classes_first(tmp_path, classes_per_video):
    out, database, _ = generate(tmp_path, classes_per_video=classes_per_video)
    body = json.loads((out / CLASSIFIER_FILE).read_text())
    classes = (out / "annotations/category_idx.txt").read_text().splitlines()
    assert body["class"] == classes and sorted(body["results"]) == sorted(database)
    videos_with_several = 0
    for name, video in database.items():
        scores = dict(zip(classes, body["results"][name]))
        present = action_time(video["annotations"])
        assert len(scores) == len(classes)
        assert all(PRESENT_FLOOR <= scores[c] < 1.0 for c in present), (name, scores, present)
        assert all(0.0 <= scores[c] < ABSENT_CEILING for c in classes if c not in present), (name, scores, present)
        videos_with_several += len(present) > 1
    if classes_per_video == 1:
        assert videos_with_several == 0
    else:
        assert videos_with_several > 0  # the default draws each action's class: mixed videos exist


def test_one_class_per_video_lets_the_classifier_label_every_action(tmp_path):
    """With classes_per_video=1, StandardClassifier (topk=2) puts the true class first in every non-empty video."""
    out, database, _ = generate(tmp_path, classes_per_video=1)
    clf = build_classifier(dict(type="StandardClassifier", path=str(out / CLASSIFIER_FILE), topk=2))
    for name, video in database.items():
        present = action_time(video["annotations"])
        _, labels, scores = clf(name, torch.zeros(1, 2), torch.ones(1))
        if present:
            assert labels[0] == next(iter(present)) and scores[0] > scores[1]


def test_scores_are_seeded_and_file_is_in_the_manifest(tmp_path):
    out, _, report = generate(tmp_path / "a")
    again, _, _ = generate(tmp_path / "b")
    assert (out / CLASSIFIER_FILE).read_bytes() == (again / CLASSIFIER_FILE).read_bytes()
    other, _, _ = generate(tmp_path / "c", seed=1)
    assert (out / CLASSIFIER_FILE).read_bytes() != (other / CLASSIFIER_FILE).read_bytes()
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["files"][CLASSIFIER_FILE] == os.path.getsize(out / CLASSIFIER_FILE)
    os.remove(out / CLASSIFIER_FILE)  # a missing file makes the dataset incomplete: the rerun rewrites it
    _, _, rerun = generate(tmp_path / "a")
    assert not report.skipped and not rerun.skipped and (out / CLASSIFIER_FILE).is_file()


def test_classes_per_video_must_not_be_negative():
    with pytest.raises(ValueError, match="classes_per_video=-1 must be >= 0"):
        settings_from_preset("default", dict(classes_per_video=-1))


def test_two_classes_per_video_draw_from_two(tmp_path):
    _, database, _ = generate(tmp_path, classes_per_video=2, actions_per_minute=40.0)
    counts = [len(action_time(v["annotations"])) for v in database.values()]
    assert max(counts) == 2 and np.mean(counts) > 1.0
