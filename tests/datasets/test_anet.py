"""ActivityNet datasets (AnetResizeDataset, AnetPaddingDataset, AnetSlidingDataset) on a hand-made video.

``v1`` lasts 20 s (600 frames at 30 fps). Its annotations, classes A=0, B=1, C=2::

    a  A [2.0, 6.0]     usual
    b  B [5.0, 5.1]     0.5 % of the video: dropped by the resize filter_gt (needs > 1 %)
    c  A [18.0, 21.0]   ends after the video: kept (as upstream), counted at INFO
    d  A [2.0, 6.0]     the same segment and label as a: dropped
    e  C [25.0, 30.0]   entirely after the video: skipped, counted in the warning
    f  B [7.0, 7.0]     end <= start: skipped, counted in the warning
    g  A [0.1, 0.5]     ends before the first snippet centre (frame 8 at fps 15): padding filter_gt drops it

Padding / sliding with ``fps=15``, ``feature_stride=16``, ``offset_frames=8``:
seconds -> frames ``t * 15`` (no truncation), snippets ``(frame - 8) / 16``:
a [30, 90] -> [1.375, 5.125]; b [75, 76.5] -> [4.1875, 4.28125]; c [270, 315] -> [16.375, 19.1875];
g [1.5, 7.5] (end - 8 <= 0).
"""
import json
import logging
import os

import numpy as np
import pytest
import torch

from opentad.datasets import AnetPaddingDataset, AnetResizeDataset, AnetSlidingDataset, build_dataset
from opentad.datasets.synthetic import generate_dataset, settings_from_preset
from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASES = os.path.join(ROOT, "configs", "_base_", "datasets")

SEGMENTS = {"a": ("A", [2.0, 6.0]), "b": ("B", [5.0, 5.1]), "c": ("A", [18.0, 21.0]), "d": ("A", [2.0, 6.0]),
            "e": ("C", [25.0, 30.0]), "f": ("B", [7.0, 7.0]), "g": ("A", [0.1, 0.5])}
V1 = {"subset": "training", "duration": 20.0, "frame": 600,
      "annotations": [{"label": label, "segment": seg} for label, seg in SEGMENTS.values()]}


def snippets(keys, fps=15.0, offset=8, stride=16, start=0):
    """Upstream's arithmetic: float64 ``t * fps`` -> float32 frames, float32 ``(f - start - offset) / stride``."""
    frames = np.array([[SEGMENTS[k][1][0] * fps, SEGMENTS[k][1][1] * fps] for k in keys], dtype=np.float32)
    return (frames - start - offset) / stride


def make(cls, tmp_path, database=None, classes="A\nB\nC\n", **kwargs):
    ann = tmp_path / "anno.json"
    ann.write_text(json.dumps({"database": database or {"v1": V1}}))
    class_map = tmp_path / "classes.txt"
    class_map.write_text(classes)
    args = dict(ann_file=str(ann), subset_name="training", data_path="feats/", pipeline=[], class_map=str(class_map))
    if cls is not AnetResizeDataset:
        args.update(feature_stride=16, offset_frames=8, fps=15)
    args.update(kwargs)
    return cls(**args)


# --------------------------------------------------------------------------- ground truth
@pytest.mark.parametrize("filter_gt, keys", [(True, "acg"), (False, "abcg")])
def test_resize_gt_in_seconds(tmp_path, filter_gt, keys):
    sample = make(AnetResizeDataset, tmp_path, filter_gt=filter_gt, resize_length=100).sample_dict(0)
    expected = np.array([SEGMENTS[k][1] for k in keys], dtype=np.float32)
    assert np.array_equal(sample["gt_segments"], expected)
    assert sample["gt_labels"].tolist() == [{"A": 0, "B": 1}[SEGMENTS[k][0]] for k in keys]
    assert (sample["fps"], sample["duration"], sample["resize_length"]) == (-1, 20.0, 100)


def test_padding_gt_in_snippets(tmp_path):
    ds = make(AnetPaddingDataset, tmp_path, filter_gt=True)
    sample = ds.sample_dict(0)
    assert np.array_equal(sample["gt_segments"], snippets("abc"))
    assert np.array_equal(sample["gt_segments"], [[1.375, 5.125], [4.1875, 4.28125], [16.375, 19.1875]])
    assert sample["gt_labels"].tolist() == [0, 1, 0]
    assert set(sample) == {"video_name", "data_path", "sample_stride", "snippet_stride", "fps", "duration",
                           "offset_frames", "gt_segments", "gt_labels"}
    assert (sample["fps"], sample["snippet_stride"], sample["offset_frames"]) == (15.0, 16, 8)
    unfiltered = make(AnetPaddingDataset, tmp_path, filter_gt=False).sample_dict(0)
    assert np.array_equal(unfiltered["gt_segments"], snippets("abcg"))


def test_padding_without_fps_uses_frame_over_duration(tmp_path):
    sample = make(AnetPaddingDataset, tmp_path, fps=-1).sample_dict(0)
    assert sample["fps"] == 30.0
    assert np.array_equal(sample["gt_segments"][0], [3.25, 10.75])  # a: [60, 180] -> (f - 8) / 16


def test_sliding_windows_hand_worked(tmp_path):
    # int(20 * 15) = 300 frames -> 19 snippet centres 0..288; window 8, stride 6: 19 // 6 = 3 windows
    # [0,8) [6,14) and [12,20) moved back to [11,19): frame spans [0,112] [96,208] [176,288].
    # ioa 0.75: w0 keeps a, b, g; w1 holds nothing; w2 holds 18 / 45 = 0.4 of c -> only w0.
    ds = make(AnetSlidingDataset, tmp_path, window_size=8)
    assert len(ds) == 1
    w0 = ds.sample_dict(0)
    assert (w0["window_start_frame"], w0["feature_start_idx"], w0["feature_end_idx"]) == (0, 0, 7)
    assert np.array_equal(w0["gt_segments"], snippets("abg"))
    # ioa 0.3 keeps w2 with c truncated to [270, 288]: ((270, 288) - 176 - 8) / 16
    ds = make(AnetSlidingDataset, tmp_path, window_size=8, ioa_thresh=0.3)
    assert len(ds) == 2
    w2 = ds.sample_dict(1)
    assert (w2["window_start_frame"], w2["feature_start_idx"], w2["feature_end_idx"]) == (176, 11, 18)
    assert np.array_equal(w2["gt_segments"], [[5.375, 6.5]]) and w2["gt_labels"].tolist() == [0]


def test_class_agnostic_labels_are_zero(tmp_path):
    for cls in (AnetResizeDataset, AnetPaddingDataset):  # a, b (class B), c, g
        assert make(cls, tmp_path, class_agnostic=True).sample_dict(0)["gt_labels"].tolist() == [0, 0, 0, 0]


# --------------------------------------------------------------------------- bad input
def test_bad_segments_one_warning_and_clipped_ones_one_info_line(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="opentad.datasets"):
        make(AnetResizeDataset, tmp_path)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 2 segment(s)" in warnings[0].getMessage()
    assert "[25.0, 30.0]" in warnings[0].getMessage() and "anno.json" in warnings[0].getMessage()
    infos = [r.getMessage() for r in caplog.records if "reach outside" in r.getMessage()]
    assert len(infos) == 1 and "1 segment(s)" in infos[0]


@pytest.mark.parametrize("segment", [[3.0], [1.0, "x"], None, [float("nan"), 2.0], [-5.0, -1.0], [20.0, 25.0]])
def test_unusable_segment_is_skipped(tmp_path, segment):
    video = dict(V1, annotations=[{"label": "A", "segment": [1.0, 2.0]}, {"label": "B", "segment": segment}])
    ds = make(AnetPaddingDataset, tmp_path, database={"v1": video})
    assert ds.sample_dict(0)["gt_labels"].tolist() == [0] and len(ds._bad_segments) == 1


@pytest.mark.parametrize("cls", [AnetResizeDataset, AnetPaddingDataset, AnetSlidingDataset])
@pytest.mark.parametrize("test_mode", [False, True])
def test_unknown_label_names_label_video_and_file(tmp_path, cls, test_mode):
    extra = {"window_size": 8} if cls is AnetSlidingDataset else {}
    with pytest.raises(ValueError, match=r"'C' of video v1 in .*anno.json is not in the class map"):
        make(cls, tmp_path, classes="A\nB\n", class_agnostic=True, test_mode=test_mode, **extra)


def test_frame_needed_only_without_fps(tmp_path):
    video = {k: v for k, v in V1.items() if k != "frame"}
    assert len(make(AnetPaddingDataset, tmp_path, database={"v1": video})) == 1  # fps=15 given
    for cls, extra in ((AnetPaddingDataset, {}), (AnetSlidingDataset, {"window_size": 8})):
        with pytest.raises(ValueError, match=r"v1 .* no \['frame'\]"):
            make(cls, tmp_path, database={"v1": video}, fps=-1, test_mode=True, **extra)
    assert len(make(AnetResizeDataset, tmp_path, database={"v1": video})) == 1


def test_missing_feature_file_names_video_and_path(tmp_path):
    ds = make(AnetResizeDataset, tmp_path, data_path=str(tmp_path), pipeline=[dict(type="LoadFeats",
              feat_format="npy", prefix="v_")])
    with pytest.raises(FileNotFoundError, match=r"'v1'.*v_v1\.npy"):
        ds[0]


# --------------------------------------------------------------------------- upstream's dataset bases
UPSTREAM_BASES = {
    "activitynet-1.3": ["e2e_resize_128_16x128x128.py", "e2e_resize_768_1x224x224.py", "features_tsp_pad.py",
                        "features_tsp_resize.py", "features_tsp_resize_trunc.py"],
    "hacs-1.1.1": ["features_slowfast_pad.py", "features_slowfast_resize.py"],
    "fineaction": ["features_internvideo_pad.py", "features_internvideo_resize_trunc.py"],
    "charades": ["e2e_train_trunc_test_sw_s4_512x1_224.py", "features_i3d_pad.py",
                 "features_videomae_train_trunc_test_sw_s4.py"],
}
# (folder, file) -> (train type, resize_length or pad length, fps, feature_stride, offset_frames, tIoU from)
VALUES = {
    ("activitynet-1.3", "features_tsp_resize.py"): ("AnetResizeDataset", 128, None, None, None, 0.5),
    ("activitynet-1.3", "features_tsp_resize_trunc.py"): ("AnetResizeDataset", 192, None, None, None, 0.5),
    ("activitynet-1.3", "features_tsp_pad.py"): ("AnetPaddingDataset", 768, 15, 16, 8, 0.5),
    ("activitynet-1.3", "e2e_resize_768_1x224x224.py"): ("AnetResizeDataset", 768, None, None, None, 0.5),
    ("activitynet-1.3", "e2e_resize_128_16x128x128.py"): ("AnetResizeDataset", 128, None, None, None, 0.5),
    ("hacs-1.1.1", "features_slowfast_resize.py"): ("AnetResizeDataset", 224, None, None, None, 0.5),
    ("hacs-1.1.1", "features_slowfast_pad.py"): ("AnetPaddingDataset", 960, 15, 8, 16, 0.5),
    ("fineaction", "features_internvideo_pad.py"): ("AnetPaddingDataset", 2304, 30, 16, 8, 0.5),
    ("fineaction", "features_internvideo_resize_trunc.py"): ("AnetResizeDataset", 192, None, None, None, 0.5),
    ("charades", "features_i3d_pad.py"): ("EpicKitchensPaddingDataset", 768, 24, 8, 0, 0.1),
    ("charades", "features_videomae_train_trunc_test_sw_s4.py"): ("EpicKitchensPaddingDataset", 512, 30, 4, 2, 0.1),
    ("charades", "e2e_train_trunc_test_sw_s4_512x1_224.py"): ("EpicKitchensPaddingDataset", 512, 30, 4, 0, 0.1),
}


@pytest.mark.parametrize("folder", sorted(UPSTREAM_BASES))
def test_upstream_bases_exist_with_upstreams_values(folder):
    assert sorted(os.listdir(os.path.join(BASES, folder))) == UPSTREAM_BASES[folder]
    for name in UPSTREAM_BASES[folder]:
        cfg = load_config(os.path.join(BASES, folder, name))  # tests/test_configs.py checks types and keys
        kind, length, fps, stride, offset, tiou = VALUES[(folder, name)]
        train = cfg.dataset.train
        assert train.type == kind, name
        assert train.get("resize_length", length) == length and train.get("fps") == fps, name
        assert (train.get("feature_stride"), train.get("offset_frames")) == (stride, offset), name
        assert cfg.evaluation.tiou_thresholds[0] == tiou and cfg.evaluation.type == "mAP", name
        assert cfg.dataset.test.test_mode and not cfg.dataset.test.filter_gt, name


def _feature_config(name, tmp_path, folder="activitynet-1.3"):
    """A base with its paths pointed at v1's hand-made features ``feats[t, c] = 100 t + c``, 75 rows x 4 channels."""
    feats = tmp_path / "feats"
    feats.mkdir(exist_ok=True)
    values = (100 * np.arange(75)[:, None] + np.arange(4)[None]).astype(np.float32)
    np.save(feats / "v_v1.npy", values)
    np.save(feats / "v1.npy", values)
    (tmp_path / "anno.json").write_text(json.dumps({"database": {"v1": dict(V1, subset="validation")}}))
    (tmp_path / "classes.txt").write_text("A\nB\nC\n")
    cfg = load_config(os.path.join(BASES, folder, name))
    for split in ("train", "val", "test"):
        cfg.dataset[split].update(ann_file=str(tmp_path / "anno.json"), class_map=str(tmp_path / "classes.txt"),
                                  data_path=str(feats) + "/", block_list=None, subset_name="validation")
    return cfg


def test_tsp_resize_base_gives_128_steps_and_scaled_gt(tmp_path):
    cfg = _feature_config("features_tsp_resize.py", tmp_path)
    sample = build_dataset(cfg.dataset.val)[0]
    assert sample["inputs"].shape == (4, 128) and bool(sample["masks"].all())
    # filter_gt: a, c, g in seconds -> clip(t / 20, 0, 1) * 128 (float32)
    expected = np.clip(np.array([[2.0, 6.0], [18.0, 21.0], [0.1, 0.5]], np.float32) / 20.0, 0, 1) * 128
    assert torch.equal(sample["gt_segments"], torch.from_numpy(expected.astype(np.float32)))
    assert sample["gt_labels"].tolist() == [0, 0, 0]  # class-agnostic
    test = build_dataset(cfg.dataset.test)[0]
    assert test["inputs"].shape == (4, 128) and test["metas"]["fps"] == -1 and test["metas"]["resize_length"] == 128


def test_tsp_pad_base_pads_to_768(tmp_path):
    sample = build_dataset(_feature_config("features_tsp_pad.py", tmp_path).dataset.val)[0]
    assert sample["inputs"].shape == (4, 768) and int(sample["masks"].sum()) == 75
    assert torch.equal(sample["inputs"][:, :75], torch.from_numpy((100 * np.arange(75)[:, None]
                                                                   + np.arange(4)[None]).astype(np.float32)).T)
    assert torch.equal(sample["gt_segments"], torch.from_numpy(snippets("abc")))


def test_hacs_pad_base_reads_unprefixed_files_at_offset_16(tmp_path):
    sample = build_dataset(_feature_config("features_slowfast_pad.py", tmp_path, "hacs-1.1.1").dataset.val)[0]
    # filter_gt=False for HACS validation: a, b, c, g; frames t * 15, snippets (f - 16) / 8
    assert torch.equal(sample["gt_segments"], torch.from_numpy(snippets("abcg", offset=16, stride=8)))
    assert sample["gt_labels"].tolist() == [0, 1, 0, 0]  # not class-agnostic


# --------------------------------------------------------------------------- training on the synthetic "anet" preset
@pytest.fixture(scope="module")
def synthetic_anet(tmp_path_factory):
    """A tiny "anet" preset dataset (features only, 16 channels, 3 classes): 4 training and 2 test videos."""
    out = tmp_path_factory.mktemp("synthetic_anet")
    overrides = dict(num_train=4, num_test=2, num_classes=3, feat_dim=16, max_duration=30.0, write_videos=False)
    generate_dataset(settings_from_preset("anet", overrides), str(out))
    return dict(ann_file=str(out / "annotations" / "thumos_14_anno.json"), data_path=str(out / "features" / "stride4"),
                class_map=str(out / "annotations" / "category_idx.txt"))


FEATURE_PIPELINE = [dict(type="LoadFeats", feat_format="npy"),
                    dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"])]
COLLECT = [dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
           dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"])]
TRAIN_CONFIGS = {
    "AnetResizeDataset": dict(
        resize_length=128, filter_gt=True,
        pipeline=FEATURE_PIPELINE + [dict(type="ResizeFeat", tool="torchvision_align")] + COLLECT),
    "AnetPaddingDataset": dict(feature_stride=4, fps=30, filter_gt=True,
                               pipeline=FEATURE_PIPELINE + [dict(type="Padding", length=256)] + COLLECT),
    "AnetSlidingDataset": dict(feature_stride=4, window_size=64, ioa_thresh=0.5,
                               pipeline=FEATURE_PIPELINE + [dict(type="SlidingWindowTrunc", with_mask=True)] + COLLECT),
}


def _tiny_temporalmaxer():
    cfg = load_config(os.path.join(ROOT, "configs", "_base_", "models", "temporalmaxer.py")).model.to_dict()
    cfg["projection"].update(in_channels=16, out_channels=16)
    cfg["neck"].update(in_channels=16, out_channels=16)
    cfg["rpn_head"].update(num_classes=3, in_channels=16, feat_channels=16)
    torch.manual_seed(0)
    return build(cfg, DETECTORS)


@pytest.mark.parametrize("kind", sorted(TRAIN_CONFIGS))
def test_each_class_trains_on_the_synthetic_anet_preset(synthetic_anet, kind):
    """Three AdamW steps of a tiny TemporalMaxer on batches of 2: finite losses, every step moves the weights."""
    from opentad.datasets import build_dataloader

    dataset = build_dataset(dict(type=kind, subset_name="validation", **synthetic_anet, **TRAIN_CONFIGS[kind]))
    loader = build_dataloader(dataset, batch_size=2, shuffle=True, seed=0)
    model = _tiny_temporalmaxer()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = [batch for _, batch in zip(range(3), iter(loader))]
    for batch in batches:
        assert batch["inputs"].shape[1:] == (16, {"AnetResizeDataset": 128, "AnetPaddingDataset": 256}.get(kind, 64))
        before = [p.detach().clone() for p in model.parameters()]
        losses = model(**batch)
        assert torch.isfinite(losses["cost"]) and losses["cost"] > 0
        optimizer.zero_grad()
        losses["cost"].backward()
        optimizer.step()
        assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
