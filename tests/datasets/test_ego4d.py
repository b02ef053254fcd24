"""Ego4D-MQ datasets: hand-worked ground truth and windows, the config bases, bad input, and a short training each.

Reference clip ``c1``: 10 s, 300 frames (30 fps). Padding / sliding turn a
segment into frames with ``int(t / 10 * 300)``, then snippets with
``(frame - 4) / 8`` (``offset_frames=4``, ``feature_stride=8``)::

    A [1.0, 3.0]   -> frames [30, 90]   -> snippets [3.25, 10.75]
    B [2.5, 6.11]  -> frames [75, 183]  -> snippets [8.875, 22.375]   (183.3 truncated)
    A [1.0, 3.0]   the same moment from a second annotator: kept once
    C [4.5, 6.0]   -> frames [135, 180] -> snippets [16.375, 22.0]
    A [9.0, 11.0]  ends after the clip: skipped, counted in one warning
"""
import json
import logging
import os

import numpy as np
import pytest
import torch

from opentad.datasets import (
    Ego4DPaddingDataset,
    Ego4DResizeDataset,
    Ego4DSlidingDataset,
    build_dataloader,
    build_dataset,
)
from opentad.datasets.synthetic.layouts import generate_layout, write_ego4d_layout
from opentad.evaluations import build_evaluator
from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASES = os.path.join(ROOT, "configs", "_base_", "datasets", "ego4d_mq")
ACTIONFORMER = os.path.join(ROOT, "configs", "_base_", "models", "actionformer.py")

CLASSES = ["A", "B", "C"]
SEG_A = {"label": "A", "segment": [1.0, 3.0]}
CLIPS = {
    "c1": {"subset": "val", "duration": 10.0, "frame": 300, "annotations": [
        SEG_A, {"label": "B", "segment": [2.5, 6.11]}, dict(SEG_A), {"label": "C", "segment": [4.5, 6.0]},
        {"label": "A", "segment": [9.0, 11.0]}]},
    "c_train": {"subset": "train", "duration": 10.0, "frame": 300, "annotations": [SEG_A]},
    "c_test": {"subset": "test", "duration": 10.0, "frame": 300},
}


def write_annotations(folder, database, classes, ann_name="anno.json", map_name="category_idx.txt"):
    """Annotation file and class map in ``folder``; returns their paths."""
    ann, class_map = os.path.join(folder, ann_name), os.path.join(folder, map_name)
    with open(ann, "w") as f:
        json.dump({"database": database}, f)
    with open(class_map, "w") as f:
        f.writelines(f"{c}\n" for c in classes)
    return ann, class_map


def base_keys(tmp_path, database=CLIPS, classes=CLASSES, **extra):
    ann, class_map = write_annotations(str(tmp_path), database, classes)
    return dict(ann_file=ann, class_map=class_map, data_path=str(tmp_path), pipeline=[], **extra)


def tiny_actionformer(channels, num_classes, seq_len):
    """ActionFormer from the upstream base config, shrunk to ``channels`` wide, 3 levels, ``seq_len`` steps."""
    torch.manual_seed(0)
    cfg = load_config(ACTIONFORMER, {
        "model.projection.in_channels": channels, "model.projection.out_channels": 16,
        "model.projection.arch": (2, 1, 2), "model.projection.attn_cfg.n_head": 2,
        "model.projection.attn_cfg.n_mha_win_size": 5, "model.projection.max_seq_len": seq_len,
        "model.neck.in_channels": 16, "model.neck.out_channels": 16, "model.neck.num_levels": 3,
        "model.rpn_head.num_classes": num_classes, "model.rpn_head.in_channels": 16,
        "model.rpn_head.feat_channels": 16, "model.rpn_head.prior_generator.strides": [1, 2, 4],
        "model.rpn_head.prior_generator.regression_range": [(0, 4), (4, 8), (8, 10000)],
        # no stochastic depth, and a fixed loss normaliser: the costs of successive steps are comparable
        "model.projection.path_pdrop": 0.0, "model.rpn_head.loss_normalizer_momentum": 1.0,
    })
    return build(cfg.model, DETECTORS)


def train_steps(dataset, *, channels, num_classes, seq_len, steps=6):
    """Fit one batch of ``dataset`` for ``steps`` AdamW steps; returns the losses.

    The batch's ground truth is checked to lie in the window and its labels in the class map first.
    """
    batch = next(iter(build_dataloader(dataset, batch_size=2, shuffle=True, seed=0)))
    assert batch["inputs"].shape == (2, channels, seq_len)
    for segments, labels in zip(batch["gt_segments"], batch["gt_labels"]):
        assert len(segments) > 0 and segments.min() >= 0 and segments.max() <= seq_len
        assert labels.min() >= 0 and labels.max() < num_classes
    model = tiny_actionformer(channels, num_classes, seq_len).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        cost = model(**batch)["cost"]
        optimizer.zero_grad()
        cost.backward()
        optimizer.step()
        losses.append(cost.item())
    return losses


def assert_trains(losses):
    """Finite losses, and fitting one batch lowers its loss (a dataset feeding wrong targets still may, but
    one feeding no / misplaced / out-of-range targets fails the checks of :func:`train_steps` or crashes)."""
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses


# ----------------------------------------------------------------------------- padding / sliding
def test_padding_ground_truth_hand_worked(tmp_path, caplog):
    keys = base_keys(tmp_path, subset_name="val", feature_stride=8, offset_frames=4)
    with caplog.at_level(logging.WARNING):
        dataset = Ego4DPaddingDataset(**keys)
    sample = dataset.sample_dict(0)
    expected = np.array([[3.25, 10.75], [8.875, 22.375], [16.375, 22.0]], dtype=np.float32)
    assert np.array_equal(sample["gt_segments"], expected)
    assert sample["gt_labels"].tolist() == [0, 1, 2]
    assert sample["fps"] == 30.0 and sample["snippet_stride"] == 8 and sample["offset_frames"] == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 1 segment" in warnings[0] and "c1" in warnings[0]


def test_sliding_windows_hand_worked(tmp_path):
    """38 snippet centres (0, 8, ..., 296); window 16 without overlap: windows [0, 16) and [16, 32)
    (frames 0-120 and 128-248; the tail 32-37 is not covered, upstream's loop). IoA > 0.75:
    A [30, 90] in the first window only; B [75, 183] in none; C [135, 180] in the second:
    (135 - 128 - 4) / 8 = 0.375, (180 - 128 - 4) / 8 = 6.0."""
    keys = base_keys(tmp_path, subset_name="val", feature_stride=8, offset_frames=4, window_size=16,
                     window_overlap_ratio=0)
    dataset = Ego4DSlidingDataset(**keys)
    samples = [dataset.sample_dict(i) for i in range(len(dataset))]
    assert [(s["feature_start_idx"], s["feature_end_idx"], s["window_start_frame"]) for s in samples] == [
        (0, 15, 0), (16, 31, 128)]
    assert np.array_equal(samples[0]["gt_segments"], np.array([[3.25, 10.75]], dtype=np.float32))
    assert np.array_equal(samples[1]["gt_segments"], np.array([[0.375, 6.0]], dtype=np.float32))
    assert [s["gt_labels"].tolist() for s in samples] == [[0], [2]]
    test = Ego4DSlidingDataset(**{**keys, "subset_name": "test", "test_mode": True})
    assert len(test) == 2 and "gt_segments" not in test.sample_dict(0)


def test_ambiguous_is_an_unknown_label_for_ego4d(tmp_path):
    """THUMOS skips ``Ambiguous``; Ego4D has no such label, so it must be in the class map like any other."""
    clips = {"c1": {"subset": "val", "duration": 10.0, "frame": 300,
                    "annotations": [{"label": "Ambiguous", "segment": [1.0, 2.0]}]}}
    for cls in (Ego4DPaddingDataset, Ego4DSlidingDataset):
        with pytest.raises(ValueError, match=r"'Ambiguous' of video c1 in .*anno\.json is not in the class map"):
            cls(**base_keys(tmp_path, clips, subset_name="val", feature_stride=8, window_size=4)
                if cls is Ego4DSlidingDataset else base_keys(tmp_path, clips, subset_name="val", feature_stride=8))


def test_missing_frame_field_is_named(tmp_path):
    clips = {"c1": {"subset": "val", "duration": 10.0, "annotations": [SEG_A]}}
    with pytest.raises(ValueError, match=r"c1 in .*anno\.json has no \['frame'\]"):
        Ego4DPaddingDataset(**base_keys(tmp_path, clips, subset_name="val", feature_stride=8))


# ----------------------------------------------------------------------------- resize
def test_resize_ground_truth_in_whole_seconds(tmp_path):
    """Upstream truncates seconds: [1.7, 3.2] -> [1, 3]; [2.2, 2.9] -> [2, 2] (dropped by filter_gt);
    [9.5, 10.5] reaches past the clip and is kept -> [9, 10] (the pipeline clips it)."""
    clips = {"c1": {"subset": "val", "duration": 10.0, "frame": 300, "annotations": [
        {"label": "A", "segment": [1.7, 3.2]}, {"label": "B", "segment": [2.2, 2.9]},
        {"label": "C", "segment": [9.5, 10.5]}]}}
    keys = base_keys(tmp_path, clips, subset_name="val", resize_length=32)
    kept_all = Ego4DResizeDataset(**keys).sample_dict(0)
    assert np.array_equal(kept_all["gt_segments"], np.array([[1, 3], [2, 2], [9, 10]], dtype=np.float32))
    filtered = Ego4DResizeDataset(**keys, filter_gt=True).sample_dict(0)
    assert np.array_equal(filtered["gt_segments"], np.array([[1, 3], [9, 10]], dtype=np.float32))
    assert filtered["gt_labels"].tolist() == [0, 2]
    assert filtered["fps"] == -1 and filtered["resize_length"] == 32 and filtered["duration"] == 10.0


# ----------------------------------------------------------------------------- config bases
FEATURE_BASES = {
    "features_internvideo_train_trunc_test_sw_2048_s8.py": (8, 4, 2048),
    "features_slowfast_train_trunc_test_sw_1024_s16.py": (16, 16, 1024),
}


def _pointed(name, tmp_path, database=CLIPS):
    cfg = load_config(os.path.join(BASES, name))
    ann, class_map = write_annotations(str(tmp_path), database, CLASSES)
    for split in ("train", "val", "test"):
        cfg.dataset[split].update(ann_file=ann, class_map=class_map, data_path=str(tmp_path) + "/")
    cfg.evaluation.ground_truth_filename = ann
    return cfg


def test_bases_are_upstreams():
    assert sorted(os.listdir(BASES)) == sorted(["e2e_train_trunc_test_sw_1800_s8.py", *FEATURE_BASES])
    for name in sorted(os.listdir(BASES)):
        cfg = load_config(os.path.join(BASES, name))
        assert [cfg.dataset[s].type for s in ("train", "val", "test")] == [
            "Ego4DPaddingDataset", "Ego4DSlidingDataset", "Ego4DSlidingDataset"]
        assert [cfg.dataset[s].subset_name for s in ("train", "val", "test")] == ["train", "val", "val"]
        assert cfg.dataset.val.window_overlap_ratio == 0 and cfg.dataset.test.window_overlap_ratio == 0
        assert cfg.evaluation.type == "mAP" and cfg.evaluation.top_k == [1, 5]
        assert cfg.evaluation.tiou_thresholds == [0.1, 0.2, 0.3, 0.4, 0.5]


@pytest.mark.parametrize("name", sorted(FEATURE_BASES))
def test_feature_bases_read_features(tmp_path, name):
    """Features [rows, 4], one row per snippet centre below 300 frames (38 at stride 8, 19 at 16); the
    base's window covers the whole clip (one window)."""
    stride, offset, window = FEATURE_BASES[name]
    rows = len(range(0, 300, stride))
    values = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)
    for clip in CLIPS:
        np.save(tmp_path / f"{clip}.npy", values)
    cfg = _pointed(name, tmp_path)
    val = build_dataset(cfg.dataset.val)
    assert (val.snippet_stride, val.offset_frames, val.window_size) == (stride, offset, window)
    sample = val[0]
    assert sample["inputs"].shape == (4, window) and int(sample["masks"].sum()) == rows
    assert torch.equal(sample["inputs"][:, :rows], torch.from_numpy(values).T)
    frames = np.array([[30, 90], [75, 183], [135, 180]], dtype=np.float32)  # A, B, C (the module docstring)
    assert torch.equal(sample["gt_segments"], torch.from_numpy((frames - offset) / stride))
    torch.manual_seed(0)
    train = build_dataset(cfg.dataset.train)[0]
    assert train["inputs"].shape == (4, window) and train["gt_labels"].tolist() == [0]
    test = build_dataset(cfg.dataset.test)[0]
    assert test["inputs"].shape == (4, window) and "gt_segments" not in test


PREDICTION = {"results": {"c1": [{"segment": [1.0, 3.0], "label": "A", "score": 0.9}]}}


def test_evaluation_section_binds_to_map(tmp_path):
    """Ground truth A, B, C once each; one prediction matching A exactly: AP 1, 0, 0 -> mAP 1/3 at every tIoU."""
    clips = {"c1": dict(CLIPS["c1"], annotations=CLIPS["c1"]["annotations"][1:4]),
             "c_test": dict(CLIPS["c_test"], annotations=[])}
    cfg = _pointed("features_slowfast_train_trunc_test_sw_1024_s16.py", tmp_path, clips)
    metrics = build_evaluator(dict(cfg.evaluation), prediction_filename=PREDICTION).evaluate()
    assert abs(metrics["average_mAP"] - 1 / 3) < 1e-12  # a mean of 0s and 1s: rounding far below 1e-12


def test_evaluation_reads_upstream_files_with_unannotated_test_videos(tmp_path):
    cfg = _pointed("features_slowfast_train_trunc_test_sw_1024_s16.py", tmp_path)
    build_evaluator(dict(cfg.evaluation), prediction_filename=PREDICTION).evaluate()


def test_e2e_base_builds_frame_pipelines(tmp_path):
    cfg = _pointed("e2e_train_trunc_test_sw_1800_s8.py", tmp_path)
    for split in ("train", "val", "test"):
        dataset = build_dataset(cfg.dataset[split])
        assert dataset.snippet_stride == 8 and cfg.dataset[split].pipeline[-1]["inputs"] == "imgs"


# ----------------------------------------------------------------------------- training on the synthetic layout
@pytest.fixture(scope="module")
def ego4d_root(tmp_path_factory):
    """The "ego4d" preset shrunk: 4 train / 2 val clips of 8 min (3600 rows), 3 classes, 16 channels."""
    root = str(tmp_path_factory.mktemp("synthetic_ego4d"))
    generate_layout("ego4d", root, dict(num_train=4, num_test=2, num_classes=3, feat_dim=16, write_videos=False))
    return root


def _synthetic_keys(root, **extra):
    return dict(ann_file=os.path.join(root, "annotations", "ego4d_v2_220429.json"),
                class_map=os.path.join(root, "annotations", "category_idx.txt"),
                data_path=os.path.join(root, "features", "stride4") + "/", subset_name="train", **extra)


def _feature_pipeline(middle):
    return [dict(type="LoadFeats", feat_format="npy"),
            dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]), middle,
            dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
            dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"])]


def test_synthetic_layout_is_ego4d_shaped(ego4d_root):
    with open(os.path.join(ego4d_root, "annotations", "ego4d_v2_220429.json")) as f:
        database = json.load(f)["database"]
    assert sorted({v["subset"] for v in database.values()}) == ["train", "val"]
    assert all(v["duration"] == 480.0 and v["frame"] == 14400 for v in database.values())
    labels = [a["label"] for v in database.values() for a in v["annotations"]]
    assert "Ambiguous" not in labels and len(labels) / len(database) > 20  # many short moments a clip


def test_layout_renames_subsets_and_drops_ambiguous(tmp_path):
    """A hand-made generator output: ``validation`` -> ``train``, ``test`` -> ``val``, Ambiguous dropped."""
    (tmp_path / "annotations").mkdir()
    source = {"video_validation_0000001": {"subset": "validation", "duration": 10.0, "frame": 300, "annotations": [
        {"label": "Ambiguous", "segment": [0.5, 1.0]}, {"label": "B", "segment": [2.0, 3.0]}]},
        "video_test_0000001": {"subset": "test", "duration": 5.0, "frame": 150, "annotations": []}}
    write_annotations(str(tmp_path / "annotations"), source, CLASSES, "thumos_14_anno.json")
    with open(write_ego4d_layout(str(tmp_path))["annotations"]) as f:
        assert json.load(f)["database"] == {
            "video_validation_0000001": {"subset": "train", "duration": 10.0, "frame": 300,
                                         "annotations": [{"segment": [2.0, 3.0], "label": "B"}]},
            "video_test_0000001": {"subset": "val", "duration": 5.0, "frame": 150, "annotations": []}}


@pytest.mark.parametrize("kind", ["padding", "sliding", "resize"])
def test_each_ego4d_dataset_trains(ego4d_root, kind):
    if kind == "padding":
        dataset = Ego4DPaddingDataset(**_synthetic_keys(ego4d_root, feature_stride=4, pipeline=_feature_pipeline(
            dict(type="RandomTrunc", trunc_len=64, trunc_thresh=0.3, crop_ratio=[0.9, 1.0]))))
    elif kind == "sliding":
        dataset = Ego4DSlidingDataset(**_synthetic_keys(ego4d_root, feature_stride=4, window_size=64,
                                                        window_overlap_ratio=0,
                                                        pipeline=_feature_pipeline(dict(type="SlidingWindowTrunc"))))
    else:
        dataset = Ego4DResizeDataset(**_synthetic_keys(ego4d_root, resize_length=64, pipeline=_feature_pipeline(
            dict(type="ResizeFeat", tool="interpolate"))))
    assert_trains(train_steps(dataset, channels=16, num_classes=3, seq_len=64))
