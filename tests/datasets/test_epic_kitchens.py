"""EPIC-Kitchens-100 (verb / noun) and EPIC-Sounds datasets: hand-worked ground truth and windows, the config
bases, bad input, the synthetic layout and a short training of each class.

Reference video ``P01_01``: 20 s at the config's 30 fps (no ``frame`` field). Segments become frames with
``int(t * 30)`` and snippets with ``(frame - 16) / 16`` (``offset_frames=16``, ``feature_stride=16``)::

    id_001 [1.0, 2.5]     -> frames [30, 75]    -> snippets [0.875, 3.6875]
    id_000 [0.51, 0.52]   -> frames [15, 15]    (15.3, 15.6 truncated: zero length, dropped by filter_gt)
    id_002 [3.333, 7.9]   -> frames [99, 237]   -> snippets [5.1875, 13.8125]   (99.99 truncated, not rounded)
    id_001 [1.0, 2.5]     repeated: kept once
    id_000 [12.0, 14.0]   -> frames [360, 420]  -> snippets [21.5, 25.25]
    id_002 [19.0, 20.5]   ends after the video: skipped, counted in one warning
"""
import json
import logging
import os

import numpy as np
import pytest
import torch

from opentad.datasets import EpicKitchensPaddingDataset, EpicKitchensSlidingDataset, build_dataset
from opentad.datasets.synthetic.layouts import EPIC_FILES, generate_layout, verb_noun
from opentad.evaluations import build_evaluator
from opentad.utils.config import load_config
from tests.datasets.test_ego4d import assert_trains, train_steps, write_annotations

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATASETS = os.path.join(ROOT, "configs", "_base_", "datasets")

CLASSES = ["id_000", "id_001", "id_002"]
TAKE = {"label": "id_001", "segment": [1.0, 2.5]}
VIDEOS = {
    "P01_01": {"subset": "val", "duration": 20.0, "annotations": [
        TAKE, {"label": "id_000", "segment": [0.51, 0.52]}, {"label": "id_002", "segment": [3.333, 7.9]},
        dict(TAKE), {"label": "id_000", "segment": [12.0, 14.0]}, {"label": "id_002", "segment": [19.0, 20.5]}]},
    "P01_02": {"subset": "train", "duration": 20.0, "annotations": [TAKE]},
    "P01_03": {"subset": "test", "duration": 20.0},
}
SLOWFAST = dict(fps=30, feature_stride=16, offset_frames=16)


def _keys(tmp_path, videos=VIDEOS, **extra):
    ann, class_map = write_annotations(str(tmp_path), videos, CLASSES)
    return {**dict(ann_file=ann, class_map=class_map, data_path=str(tmp_path), pipeline=[], subset_name="val",
                   **SLOWFAST), **extra}


def test_padding_ground_truth_hand_worked(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        dataset = EpicKitchensPaddingDataset(**_keys(tmp_path))
    sample = dataset.sample_dict(0)
    expected = np.array([[0.875, 3.6875], [-0.0625, -0.0625], [5.1875, 13.8125], [21.5, 25.25]], dtype=np.float32)
    assert np.array_equal(sample["gt_segments"], expected)
    assert sample["gt_labels"].tolist() == [1, 0, 2, 0]
    assert sample["fps"] == 30 and sample["snippet_stride"] == 16 and sample["duration"] == 20.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 1 segment" in warnings[0] and "P01_01" in warnings[0]
    filtered = EpicKitchensPaddingDataset(**_keys(tmp_path, filter_gt=True)).sample_dict(0)
    assert np.array_equal(filtered["gt_segments"], expected[[0, 2, 3]])


def test_sliding_windows_hand_worked(tmp_path):
    """int(20 * 30) = 600 frames: 38 snippet centres 0, 16, ..., 592. Window 16, overlap 0.25: stride 12,
    38 // 12 = 3 windows [0, 16), [12, 28), [24, 40) -> moved back to [22, 38); frames [0, 240], [192, 432],
    [352, 592]. IoA > 0.75: [30, 75] and [99, 237] in the first; [360, 420] in the second and third
    ((360 - 192 - 16) / 16 = 9.5, (420 - 352 - 16) / 16 = 3.25); the zero-length [15, 15] in none."""
    dataset = EpicKitchensSlidingDataset(**_keys(tmp_path, window_size=16, window_overlap_ratio=0.25))
    samples = [dataset.sample_dict(i) for i in range(len(dataset))]
    assert [(s["feature_start_idx"], s["feature_end_idx"], s["window_start_frame"]) for s in samples] == [
        (0, 15, 0), (12, 27, 192), (22, 37, 352)]
    expected = [[[0.875, 3.6875], [5.1875, 13.8125]], [[9.5, 13.25]], [[-0.5, 3.25]]]
    for sample, segments in zip(samples, expected):
        assert np.array_equal(sample["gt_segments"], np.array(segments, dtype=np.float32))
    assert [s["gt_labels"].tolist() for s in samples] == [[1, 2], [0], [0]]
    test = EpicKitchensSlidingDataset(**_keys(tmp_path, window_size=16, subset_name="test", test_mode=True))
    assert len(test) == 3 and test.sample_dict(0)["fps"] == 30


@pytest.mark.parametrize("fps", [-1, 0])
@pytest.mark.parametrize("cls", [EpicKitchensPaddingDataset, EpicKitchensSlidingDataset])
def test_fps_is_required(tmp_path, cls, fps):
    """Upstream's default fps=-1 silently gives negative frames; here it is an error naming the file."""
    keys = {**_keys(tmp_path, window_size=16), "fps": fps}
    if cls is EpicKitchensPaddingDataset:
        keys.pop("window_size")
    with pytest.raises(ValueError, match=r"needs fps > 0 .* for .*anno\.json"):
        cls(**keys)


def test_unknown_label_names_label_video_and_file(tmp_path):
    videos = {"P01_01": {"subset": "val", "duration": 20.0, "annotations": [{"label": "id_097", "segment": [1, 2]}]}}
    with pytest.raises(ValueError, match=r"'id_097' of video P01_01 in .*anno\.json is not in the class map"):
        EpicKitchensPaddingDataset(**_keys(tmp_path, videos))
    with pytest.raises(ValueError, match="id_097"):  # test mode too: the labels are checked at construction
        EpicKitchensPaddingDataset(**_keys(tmp_path, videos, test_mode=True))


# ----------------------------------------------------------------------------- config bases
# file -> (dataset folder, feature_stride, offset_frames, window (train trunc_len), feat_format, sliding val/test)
EPIC_BASES = {
    "features_slowfast_verb.py": (16, 16, 2304, "npy", False),
    "features_slowfast_noun.py": (16, 16, 2304, "npy", False),
    "features_slowfast_verb_train_trunc_test_sw.py": (16, 16, 2304, "npy", True),
    "features_slowfast_noun_train_trunc_test_sw.py": (16, 16, 2304, "npy", True),
    "features_internvideo2_verb_train_trunc_test_sw_s8_pad4608.py": (8, 4, 4608, "npy", True),
    "features_internvideo2_noun_train_trunc_test_sw_s8_pad4608.py": (8, 4, 4608, "npy", True),
}
BASES = {**{f"epic_kitchens-100/{k}": v for k, v in EPIC_BASES.items()},
         "epic_sounds/features_slowfast_train_trunc_test_sw_s6_pad6144.py": (6, 16, 6144, "npz", True)}
E2E_BASES = ["epic_kitchens-100/e2e_verb_train_trunc_test_sw_s16_768x1_224.py",
             "epic_kitchens-100/e2e_noun_train_trunc_test_sw_s16_768x1_224.py"]


def _pointed(name, tmp_path, videos=VIDEOS):
    cfg = load_config(os.path.join(DATASETS, name))
    ann, class_map = write_annotations(str(tmp_path), videos, CLASSES)
    for split in ("train", "val", "test"):
        cfg.dataset[split].update(ann_file=ann, class_map=class_map, data_path=str(tmp_path) + "/", block_list=None)
    cfg.evaluation.ground_truth_filename = ann
    return cfg


def test_bases_are_upstreams():
    assert sorted(os.listdir(os.path.join(DATASETS, "epic_kitchens-100"))) == sorted([*EPIC_BASES, *(
        os.path.basename(p) for p in E2E_BASES)])
    assert os.listdir(os.path.join(DATASETS, "epic_sounds")) == [os.path.basename(n) for n in BASES if "sounds" in n]
    for name in [*BASES, *E2E_BASES]:
        cfg = load_config(os.path.join(DATASETS, name))
        task = "sounds" if "sounds" in name else "noun" if "noun" in name else "verb"
        assert task in cfg.dataset.train.ann_file and cfg.dataset.train.fps == 30, name
        assert cfg.dataset.train.filter_gt and not cfg.dataset.val.filter_gt
        assert [cfg.dataset[s].subset_name for s in ("train", "val", "test")] == ["train", "val", "val"]
        assert cfg.evaluation.type == "mAP" and cfg.evaluation.tiou_thresholds == [0.1, 0.2, 0.3, 0.4, 0.5]
        if cfg.dataset.val.type == "EpicKitchensSlidingDataset":
            assert (cfg.dataset.val.window_overlap_ratio, cfg.dataset.test.window_overlap_ratio) == (0.25, 0.5)


@pytest.mark.parametrize("name", sorted(BASES))
def test_feature_bases_read_features(tmp_path, name):
    stride, offset, window, fmt, sliding = BASES[name]
    rows = len(range(0, 600, stride))  # snippet centres below int(20 s * 30 fps) frames
    values = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)
    for video in VIDEOS:
        if fmt == "npz":
            np.savez(tmp_path / f"{video}.npz", feats=values)
        else:
            np.save(tmp_path / f"{video}.npy", values)
    cfg = _pointed(name, tmp_path)
    val = build_dataset(cfg.dataset.val)
    assert (val.snippet_stride, val.offset_frames, val.fps) == (stride, offset, 30)
    sample = val[0]
    assert sample["inputs"].shape == ((4, window) if sliding else (4, rows))
    assert torch.equal(sample["inputs"][:, :rows], torch.from_numpy(values).T) and int(sample["masks"].sum()) == rows
    frames = np.array([[30, 75], [15, 15], [99, 237], [360, 420]], dtype=np.float32)  # the module docstring
    if sliding:  # a zero-length segment lies 0 % inside any window (IoA threshold 0.75)
        frames = frames[[0, 2, 3]]
    assert torch.equal(sample["gt_segments"], torch.from_numpy((frames - offset) / stride))
    torch.manual_seed(0)
    train = build_dataset(cfg.dataset.train)[0]
    assert train["inputs"].shape == (4, window) and train["gt_labels"].tolist() == [1]
    test = build_dataset(cfg.dataset.test)[0]
    assert test["inputs"].shape[0] == 4 and "gt_segments" not in test


def test_missing_feature_file_names_video_and_path(tmp_path):
    cfg = _pointed("epic_kitchens-100/features_slowfast_verb.py", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"P01_01.*P01_01\.npy"):
        build_dataset(cfg.dataset.val)[0]


@pytest.mark.parametrize("name", E2E_BASES)
def test_e2e_bases_build_frame_pipelines(tmp_path, name):
    cfg = _pointed(name, tmp_path)
    for split in ("train", "val", "test"):
        assert build_dataset(cfg.dataset[split]).snippet_stride == 16
        assert cfg.dataset[split].pipeline[-1]["inputs"] == "imgs"


def test_evaluation_section_binds_to_map(tmp_path):
    """Ground truth of P01_01 in val without its repeated and out-of-range entries: id_001 [1, 2.5],
    id_000 [0.51, 0.52] and [12, 14], id_002 [3.333, 7.9]. Predictions: id_001 exact (AP 1), id_000 [12, 14]
    exact (one of two ground truths, AP 1/2), none for id_002 (AP 0): mAP 1/2 at every tIoU."""
    videos = {"P01_01": dict(VIDEOS["P01_01"], annotations=VIDEOS["P01_01"]["annotations"][:3] + [
        VIDEOS["P01_01"]["annotations"][4]]), "P01_03": dict(VIDEOS["P01_03"], annotations=[])}
    cfg = _pointed("epic_kitchens-100/features_slowfast_verb_train_trunc_test_sw.py", tmp_path, videos)
    predictions = {"results": {"P01_01": [{"segment": [1.0, 2.5], "label": "id_001", "score": 0.9},
                                          {"segment": [12.0, 14.0], "label": "id_000", "score": 0.8}]}}
    metrics = build_evaluator(dict(cfg.evaluation), prediction_filename=predictions).evaluate()
    assert abs(metrics["average_mAP"] - 0.5) < 1e-12  # means of 0, 1/2 and 1: rounding far below 1e-12


# ----------------------------------------------------------------------------- synthetic EPIC layout
@pytest.fixture(scope="module")
def epic_root(tmp_path_factory):
    """The "epic" preset shrunk: 4 train / 2 val videos of 60-120 s, 6 classes (3 verbs, 3 nouns), 16 channels."""
    root = str(tmp_path_factory.mktemp("synthetic_epic"))
    generate_layout("epic", root, dict(num_train=4, num_test=2, num_classes=6, feat_dim=16, write_videos=False,
                                       min_duration=60.0, max_duration=120.0, median_duration=90.0))
    return root


def _files(root):
    out = {}
    for key in ("full", "verb", "noun"):
        with open(os.path.join(root, EPIC_FILES[key])) as f:
            out[key] = json.load(f)["database"]
    with open(os.path.join(root, "annotations", "thumos_14_anno.json")) as f:
        out["source"] = json.load(f)["database"]
    with open(os.path.join(root, "annotations", "category_idx.txt")) as f:
        out["classes"] = f.read().split()
    return out


def test_synthetic_layout_verb_and_noun_labels(epic_root):
    """Each source action becomes one entry per file, in order: its verb and noun ids from its class."""
    files = _files(epic_root)
    assert list(files["verb"]) == list(files["source"]) and files["verb"].keys() == files["noun"].keys()
    count = 0
    for name, info in files["source"].items():
        assert files["verb"][name]["subset"] == {"validation": "train", "test": "val"}[info["subset"]]
        assert "frame" not in files["verb"][name] and files["noun"][name]["duration"] == info["duration"]
        actions = [a for a in info["annotations"] if a["label"] != "Ambiguous"]
        for i, anno in enumerate(actions):
            verb, noun = verb_noun(files["classes"].index(anno["label"]))
            assert files["verb"][name]["annotations"][i] == dict(segment=anno["segment"], label=f"id_{verb:03d}",
                                                                 label_name=f"verb{verb}")
            assert files["noun"][name]["annotations"][i]["label"] == f"id_{noun:03d}"
            assert files["full"][name]["annotations"][i]["verb_label"] == f"id_{verb:03d}"
            count += 1
    assert count > 50  # dense: about 15 actions a minute
    assert [verb_noun(k) for k in range(6)] == [(0, 0), (0, 1), (1, 2), (1, 0), (2, 1), (2, 2)]  # (k // 2, k % 3)
    pairs = {verb_noun(k) for k in range(20)}
    assert len(pairs) == 20  # distinct (verb, noun) per class


def test_synthetic_full_file_evaluates_with_map_epic(epic_root):
    """mAP_EPIC reads the full file's verb ids: predicting every val action's verb exactly gives mAP 1."""
    full = _files(epic_root)["full"]
    results = {name: [{"segment": a["segment"], "verb": int(a["verb_label"][3:]), "score": 1.0}
                      for a in info["annotations"]] for name, info in full.items() if info["subset"] == "val"}
    evaluator = build_evaluator(dict(type="mAP_EPIC", ground_truth_filename=os.path.join(epic_root, EPIC_FILES["full"]),
                                     subset="val", tiou_thresholds=[0.1, 0.5], task="verb"),
                                prediction_filename={"results": results})
    assert evaluator.evaluate()["average_mAP"] == 1.0


@pytest.mark.parametrize("task, kind", [("verb", "padding"), ("noun", "sliding")])
def test_each_epic_dataset_trains(epic_root, task, kind):
    keys = dict(ann_file=os.path.join(epic_root, EPIC_FILES[task]), class_map=os.path.join(epic_root, EPIC_FILES[
        f"{task}_map"]), data_path=os.path.join(epic_root, "features", "stride4") + "/", subset_name="train",
        fps=30, feature_stride=4, filter_gt=True)
    load = [dict(type="LoadFeats", feat_format="npy"), dict(type="ConvertToTensor", keys=["feats", "gt_segments",
                                                                                          "gt_labels"])]
    tail = [dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"])]
    if kind == "padding":
        dataset = EpicKitchensPaddingDataset(**keys, pipeline=load + [dict(
            type="RandomTrunc", trunc_len=64, trunc_thresh=0.3, crop_ratio=[0.9, 1.0])] + tail)
    else:
        dataset = EpicKitchensSlidingDataset(**keys, window_size=64, pipeline=load + [dict(
            type="SlidingWindowTrunc")] + tail)
    assert len(dataset.class_map) == 3
    assert_trains(train_steps(dataset, channels=16, num_classes=3, seq_len=64))
