"""External video classifiers (``post_processing.external_cls``) on small hand-made score files.

Expected labels and scores are worked by hand from upstream OpenTAD's
``classifier.py`` rules: the top ``topk`` classes of the video, each repeating
all segments (class blocks in rank order); ``p * s`` (CUHK, TCANet,
UntrimmedNet) or ``sqrt(p * s)`` (Standard). Values are dyadic where possible,
so the float32 results are exact (``torch.equal``); where a softmax is involved
the bound is 3 float32 roundings relative (the class score rounded to float32,
the product, the square root), each at most ``2**-24``, against float64 math.
"""
import json
import math

import numpy as np
import pytest
import torch

from opentad.models.utils.post_processing import ClassifierFileError, build_classifier
from opentad.models.utils.post_processing.classifier import THUMOS_UCF101_IDS
from opentad.registry import ConfigError

F32_REL = 3 * 2.0**-24
SEGMENTS = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
SCORES = torch.tensor([0.5, 0.125])


def write_json(tmp_path, body, name="cls.json"):
    path = tmp_path / name
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return str(path)


def abc_file(tmp_path, scores, **extra):
    return write_json(tmp_path, {"class": ["A", "B", "C"], "results": {"v1": scores}, **extra})


def test_standard_classifier_top2_sqrt_of_products(tmp_path):
    clf = build_classifier(dict(type="StandardClassifier", path=abc_file(tmp_path, [0.25, 0.5, 0.125]), topk=2))
    segments, labels, scores = clf("v1", SEGMENTS, SCORES)
    assert labels == ["B", "B", "A", "A"]
    assert torch.equal(segments, torch.cat([SEGMENTS, SEGMENTS]))
    # B: sqrt(0.5 * 0.5), sqrt(0.125 * 0.5); A: sqrt(0.5 * 0.25), sqrt(0.125 * 0.25)
    expected = torch.tensor([0.5, 0.25, math.sqrt(0.125), math.sqrt(0.03125)])
    assert torch.allclose(scores, expected, rtol=F32_REL, atol=0)
    assert torch.equal(scores[:2], torch.tensor([0.5, 0.25]))


def test_standard_classifier_accepts_classes_key_and_softmax(tmp_path):
    path = write_json(tmp_path, {"classes": ["A", "B"], "results": {"v1": [0.0, math.log(3.0)]}})
    clf = build_classifier(dict(type="StandardClassifier", path=path, topk=2, apply_softmax=True))
    _, labels, scores = clf("v1", SEGMENTS[:1], torch.tensor([1.0]))
    assert labels == ["B", "A"]  # softmax [0.25, 0.75]
    assert torch.allclose(scores, torch.tensor([math.sqrt(0.75), math.sqrt(0.25)], dtype=torch.float64).float(),
                          rtol=F32_REL, atol=0)


def test_ties_follow_upstream_orderings(tmp_path):
    """Standard reverses an ascending argsort (ties: the later class first); CUHK sorts -s (the earlier first)."""
    path = abc_file(tmp_path, [0.5, 0.5, 0.1])
    _, standard, _ = build_classifier(dict(type="StandardClassifier", path=path, topk=1))("v1", SEGMENTS, SCORES)
    _, cuhk, _ = build_classifier(dict(type="CUHKANETClassifier", path=path, topk=1))("v1", SEGMENTS, SCORES)
    assert standard == ["B", "B"] and cuhk == ["A", "A"]


def test_cuhk_classifier_products(tmp_path):
    clf = build_classifier(dict(type="CUHKANETClassifier", path=abc_file(tmp_path, [0.25, 0.75, 0.125]), topk=2))
    segments, labels, scores = clf("v1", SEGMENTS, torch.tensor([0.5, 1.0]))
    assert labels == ["B", "B", "A", "A"] and len(segments) == 4
    assert torch.equal(scores, torch.tensor([0.375, 0.75, 0.125, 0.25]))


def test_tcanet_classifier_twice_the_softmax_of_nested_logits(tmp_path):
    path = write_json(tmp_path, {"class": ["A", "B"], "results": {"v1": [[0.0, math.log(3.0)]]}})
    clf = build_classifier(dict(type="TCANetHACSClassifier", path=path, topk=2))
    _, labels, scores = clf("v1", SEGMENTS[:1], torch.tensor([0.5]))
    assert labels == ["B", "A"]  # 2 * softmax = [0.5, 1.5]
    assert torch.allclose(scores, torch.tensor([0.75, 0.25]), rtol=F32_REL, atol=0)


def write_unet(tmp_path, table, name="uNet_test.npy"):
    path = tmp_path / name
    np.save(path, table, allow_pickle=False)
    return str(path)


def test_untrimmednet_reads_thumos_columns_of_the_video_row(tmp_path):
    table = np.zeros((3, 101), dtype=np.float32)
    table[1, 22 - 1] = 0.75  # CliffDiving, UCF101 id 22
    table[1, 7 - 1] = 0.5  # BaseballPitch, id 7
    table[1, 0] = 5.0  # ApplyEyeMakeup: not a THUMOS class, ignored
    clf = build_classifier(dict(type="UntrimmedNetTHUMOSClassifier", path=write_unet(tmp_path, table), topk=2))
    _, labels, scores = clf("video_test_0000002", SEGMENTS, SCORES)  # row 2 - 1
    assert labels == ["CliffDiving"] * 2 + ["BaseballPitch"] * 2
    assert torch.equal(scores, torch.tensor([0.375, 0.09375, 0.25, 0.0625]))
    _, labels, _ = clf("video_test_0000001", SEGMENTS[:1], SCORES[:1])  # all tied: the highest UCF101 id first
    assert labels == ["VolleyballSpiking", "ThrowDiscus"]
    assert len(THUMOS_UCF101_IDS) == 20 and max(THUMOS_UCF101_IDS) == 97


@pytest.mark.parametrize("video", ["video_test_0000004", "video_test_0000000", "video_test_abcd"])
def test_untrimmednet_video_without_row(tmp_path, video):
    clf = build_classifier(dict(type="UntrimmedNetTHUMOSClassifier", path=write_unet(tmp_path, np.zeros((3, 101)))))
    with pytest.raises(ClassifierFileError, match=rf"uNet_test.npy has no row for video '{video}'"):
        clf(video, SEGMENTS, SCORES)


def test_pseudo_classifier_keeps_segments_and_scores():
    segments, labels, scores = build_classifier(dict(type="PseudoClassifier", pseudo_label="x"))("v", SEGMENTS, SCORES)
    assert segments is SEGMENTS and scores is SCORES and labels == ["x", "x"]
    assert build_classifier(dict(type="PseudoClassifier"))("v", SEGMENTS, SCORES)[1] == ["", ""]


def test_none_builds_nothing_and_lengths_must_agree(tmp_path):
    assert build_classifier(None) is None
    clf = build_classifier(dict(type="CUHKANETClassifier", path=abc_file(tmp_path, [0.1, 0.2, 0.3])))
    with pytest.raises(ValueError, match="2 segments but 1 scores"):
        clf("v1", SEGMENTS, SCORES[:1])


JSON_TYPES = ["StandardClassifier", "CUHKANETClassifier"]


@pytest.mark.parametrize("kind", JSON_TYPES + ["TCANetHACSClassifier", "UntrimmedNetTHUMOSClassifier"])
def test_missing_file_is_named(tmp_path, kind):
    with pytest.raises(FileNotFoundError, match=r"External classifier file not found: .*nope"):
        build_classifier(dict(type=kind, path=str(tmp_path / "nope")))


@pytest.mark.parametrize("body, message", [
    ("{not json", "unreadable"),
    ("[1, 2]", "wrong layout"),
    ('{"class": ["A"]}', "wrong layout"),
    ('{"results": {}}', "wrong layout"),
    ('{"class": [], "results": {}}', "non-empty list of class names"),
    ('{"class": [1, 2], "results": {}}', "non-empty list of class names"),
    ('{"class": ["A", "B"], "results": {"v1": [0.5]}}', r"results\['v1'\]: expected a list of 2 numbers"),
    ('{"class": ["A", "B"], "results": {"v1": ["a", "b"]}}', r"results\['v1'\]: expected a list of 2 numbers"),
    ('{"class": ["A", "B"], "results": {"v1": [0.5, NaN]}}', r"results\['v1'\]: scores must be finite"),
])
@pytest.mark.parametrize("kind", JSON_TYPES)
def test_bad_json_files(tmp_path, kind, body, message):
    path = write_json(tmp_path, body, name="bad.json")
    with pytest.raises(ClassifierFileError, match=rf"bad.json.*{message}"):
        build_classifier(dict(type=kind, path=path))


def test_tcanet_entries_must_nest_the_scores(tmp_path):
    path = write_json(tmp_path, {"class": ["A", "B"], "results": {"v1": [0.5, 0.5]}}, name="bad.json")
    with pytest.raises(ClassifierFileError, match=r"bad.json: results\['v1'\]\[0\]: expected a list of 2 numbers"):
        build_classifier(dict(type="TCANetHACSClassifier", path=path))


@pytest.mark.parametrize("kind", JSON_TYPES)
def test_video_missing_from_file(tmp_path, kind):
    clf = build_classifier(dict(type=kind, path=abc_file(tmp_path, [0.1, 0.2, 0.3])))
    with pytest.raises(ClassifierFileError, match=r"cls.json has no scores for video 'v2' \(1 videos, e.g. 'v1'\)"):
        clf("v2", SEGMENTS, SCORES)


@pytest.mark.parametrize("table, message", [
    (np.zeros(101), r"shape \(101,\)"),
    (np.zeros((3, 96)), r"shape \(3, 96\)"),
    (np.array([["a"] * 101]), "dtype <U1"),
    (np.full((2, 101), np.inf), "non-finite"),
])
def test_bad_npy_files(tmp_path, table, message):
    with pytest.raises(ClassifierFileError, match=rf"uNet_test.npy: {message}.*expected a numeric .npy array"):
        build_classifier(dict(type="UntrimmedNetTHUMOSClassifier", path=write_unet(tmp_path, table)))


@pytest.mark.parametrize("content", [b"garbage, not an npy file", None])
def test_unreadable_or_pickled_npy_is_refused(tmp_path, content):
    path = tmp_path / "uNet_test.npy"
    if content is None:  # an object array can only be read by unpickling: never done
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        path.write_bytes(content)
    with pytest.raises(ClassifierFileError, match=r"uNet_test.npy: unreadable"):
        build_classifier(dict(type="UntrimmedNetTHUMOSClassifier", path=str(path)))


@pytest.mark.parametrize("kind, topk, classes", [
    ("StandardClassifier", 4, 3), ("CUHKANETClassifier", 0, 3), ("UntrimmedNetTHUMOSClassifier", 21, 20),
])
def test_topk_above_the_class_count(tmp_path, kind, topk, classes):
    path = write_unet(tmp_path, np.zeros((2, 101))) if "Untrimmed" in kind else abc_file(tmp_path, [0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match=rf"topk={topk}: .* has {classes} classes; topk must be between 1 and"):
        build_classifier(dict(type=kind, path=path, topk=topk))


def test_unknown_keys_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'topk'"):
        build_classifier(dict(type="StandardClassifier", path=abc_file(tmp_path, [0.1, 0.2, 0.3]), top_k=2))
