"""Multi-THUMOS through the THUMOS datasets and the ``mAP`` evaluator, as upstream's dataset bases set them up.

Upstream OpenTAD reads Multi-THUMOS (65 classes, dense and multi-label
annotations of the THUMOS14 videos) with ``ThumosPaddingDataset`` /
``ThumosSlidingDataset`` and evaluates with ``mAP`` at tIoU 0.1:0.9; this
project adds no dataset class for it. The tests build the datasets and the
evaluator from ``configs/_base_/datasets/multithumos/*.py`` with only the file
paths replaced.

The reference video ``v1`` lasts 10 s with 300 frames (30 fps): segments become
frames by ``int(t / 10 * 300)`` and snippets by ``(frame - 8) / 4``
(``offset_frames=8``, snippet stride 4)::

    Run   [1.0, 3.0] -> frames [30, 90]  -> snippets [5.5, 20.5]
    Jump  [1.0, 3.0] -> the same segment, another label: kept (multi-label)
    Run   [1.0, 3.0] -> the same segment and label: dropped (duplicate)
    Throw [2.0, 6.0] -> frames [60, 180] -> snippets [13.0, 43.0]
"""
import json
import os

import numpy as np
import pytest
import torch

from opentad.datasets import build_dataset
from opentad.evaluations import build_evaluator
from opentad.utils.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASES = os.path.join(ROOT, "configs", "_base_", "datasets", "multithumos")

# 65 classes as in Multi-THUMOS; the three used sit at the start, middle and end of the class map
CLASSES = [f"Action{i:02d}" for i in range(65)]
CLASSES[3], CLASSES[40], CLASSES[64] = "Jump", "Run", "Throw"
SNIPPETS = 73  # features of v1 (any length: the padding dataset reads what the file holds)

RUN = {"label": "Run", "segment": [1.0, 3.0]}
VIDEOS = {
    "v1": {"subset": "validation", "duration": 10.0, "frame": 300, "annotations": [
        RUN, {"label": "Jump", "segment": [1.0, 3.0]}, dict(RUN), {"label": "Throw", "segment": [2.0, 6.0]}]},
    "v_blocked": {"subset": "validation", "duration": 10.0, "frame": 300, "annotations": [RUN]},
    "v_train": {"subset": "training", "duration": 10.0, "frame": 300, "annotations": [RUN]},
}


@pytest.fixture
def data(tmp_path):
    """Annotation file, class map, features (``feats[t, c] = 10000 t + c``) and block list in ``tmp_path``."""
    ann = tmp_path / "multithumos_anno.json"
    ann.write_text(json.dumps({"database": VIDEOS}))
    class_map = tmp_path / "category_idx.txt"
    class_map.write_text("".join(f"{c}\n" for c in CLASSES))
    feats = tmp_path / "feats"
    feats.mkdir()
    values = (10000.0 * np.arange(SNIPPETS)[:, None] + np.arange(2048)[None, :]).astype(np.float32)
    for name in VIDEOS:
        np.save(feats / f"{name}.npy", values)
    (feats / "missing_files.txt").write_text("v_blocked\n")
    return dict(ann_file=str(ann), class_map=str(class_map), data_path=str(feats) + "/",
                block_list=str(feats / "missing_files.txt"), values=values)


def _config(name, data):
    """The dataset base ``name`` with its file paths pointed at ``data``."""
    cfg = load_config(os.path.join(BASES, name))
    paths = {k: data[k] for k in ("ann_file", "class_map", "data_path", "block_list")}
    for split in ("train", "val", "test"):
        cfg.dataset[split].update(paths)
    cfg.evaluation.ground_truth_filename = data["ann_file"]
    return cfg


def test_bases_are_upstreams_layout():
    """The three upstream files, all on the THUMOS14 videos with Multi-THUMOS' annotations and tIoU 0.1:0.9."""
    assert sorted(os.listdir(BASES)) == [
        "e2e_train_trunc_test_sw_256x224x224.py", "features_i3d_pad.py", "features_i3d_rgb_pad.py"]
    for name in sorted(os.listdir(BASES)):
        cfg = load_config(os.path.join(BASES, name))
        assert cfg.evaluation.tiou_thresholds == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], name
        for split in ("train", "val", "test"):
            assert cfg.dataset[split].ann_file == "data/multithumos/annotations/multithumos_anno.json"
            assert cfg.dataset[split].class_map == "data/multithumos/annotations/category_idx.txt"
            assert cfg.dataset[split].data_path.startswith("data/thumos-14/")


@pytest.mark.parametrize("name, channels", [("features_i3d_pad.py", 2048), ("features_i3d_rgb_pad.py", 1024)])
def test_validation_sample_multi_label_ground_truth(data, name, channels):
    dataset = build_dataset(_config(name, data).dataset.val)
    assert [d[0] for d in dataset.data_list] == ["v1"]  # v_blocked is in missing_files.txt, v_train in another subset
    sample = dataset[0]
    # Run and Jump share a segment (both kept), the repeated Run is dropped; labels are class-map indices
    expected = torch.tensor([[5.5, 20.5], [5.5, 20.5], [13.0, 43.0]])
    assert torch.equal(sample["gt_segments"], expected)
    assert sample["gt_labels"].tolist() == [40, 3, 64]
    # I3D features: RGB channels first, flow second; the rgb base keeps channels [0, 1024)
    assert torch.equal(sample["inputs"], torch.from_numpy(data["values"][:, :channels]).T)
    assert sample["masks"].shape == (SNIPPETS,) and bool(sample["masks"].all())


@pytest.mark.parametrize("name, channels", [("features_i3d_pad.py", 2048), ("features_i3d_rgb_pad.py", 1024)])
def test_training_and_test_samples(data, name, channels):
    cfg = _config(name, data)
    train = build_dataset(cfg.dataset.train)
    assert [d[0] for d in train.data_list] == ["v_train"]
    torch.manual_seed(0)
    sample = train[0]
    # a video shorter than trunc_len=2304 is cropped to 90..100 % of its snippets, then padded to 2304
    assert sample["inputs"].shape == (channels, 2304)
    valid = int(sample["masks"].sum())
    assert round(0.9 * SNIPPETS) <= valid <= SNIPPETS and not sample["masks"][valid:].any()
    # the crop is a run of consecutive snippets of the file, channels as the validation sample's
    first = int(sample["inputs"][0, 0].item()) // 10000
    window = torch.from_numpy(data["values"][first : first + valid, :channels]).T
    assert torch.equal(sample["inputs"][:, :valid], window)
    assert sample["gt_labels"].tolist() == [40]
    test = build_dataset(cfg.dataset.test)
    sample = test[0]
    assert sample["inputs"].shape == (channels, SNIPPETS) and "gt_segments" not in sample


def test_map_at_nine_thresholds_on_multi_label_ground_truth(data, tmp_path):
    """Each label of a multi-labelled segment is its own ground truth, evaluated in its own class.

    Predictions on v1 (ground truth in seconds: Run [1, 3], Jump [1, 3], Throw [2, 6]):
    Run [1, 3] (tIoU 1), Jump [1, 2.5] (tIoU 1.5 / 2 = 0.75), Throw [2, 5.5] (tIoU 3.5 / 4 = 0.875).
    Each class has one ground truth and one prediction: AP is 1 where the tIoU reaches the
    threshold, else 0. mAP: 1 at 0.1..0.7; (1 + 0 + 1) / 3 at 0.8; 1 / 3 at 0.9;
    average (7 + 2/3 + 1/3) / 9 = 8/9.
    """
    cfg = _config("features_i3d_pad.py", data)
    predictions = {"results": {"v1": [
        {"segment": [1.0, 3.0], "label": "Run", "score": 0.9},
        {"segment": [1.0, 2.5], "label": "Jump", "score": 0.8},
        {"segment": [2.0, 5.5], "label": "Throw", "score": 0.7},
    ]}}
    evaluator = build_evaluator(dict(cfg.evaluation), prediction_filename=predictions,
                                blocked_videos=["v_blocked"])
    metrics = evaluator.evaluate()
    expected = [1.0] * 7 + [2 / 3, 1 / 3]
    got = [metrics[f"mAP@{t}"] for t in cfg.evaluation.tiou_thresholds]
    # sums and means of at most 9 terms in [0, 1]: float64 rounding far below 1e-12
    assert np.allclose(got, expected, rtol=0, atol=1e-12), got
    assert abs(metrics["average_mAP"] - 8 / 9) < 1e-12
