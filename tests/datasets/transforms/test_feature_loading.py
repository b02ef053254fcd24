import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from opentad.datasets.transforms import ChannelReduction, LoadFeats, Padding, RandomTrunc, ResizeFeat
from opentad.datasets.transforms import SlidingWindowTrunc, sample_trunc_window


@pytest.fixture
def feats():
    return np.arange(10 * 3, dtype=np.float64).reshape(10, 3)


@pytest.mark.parametrize("fmt", ["npy", "npz", "pt", "csv", "pkl"])
def test_load_feats_formats(tmp_path, feats, fmt):
    path = str(tmp_path / f"pre_vid_suf.{fmt}")
    if fmt == "npy":
        np.save(path, feats)
    elif fmt == "npz":
        np.savez(path, feats=feats)
    elif fmt == "pt":
        torch.save(torch.from_numpy(feats), path)
    elif fmt == "csv":
        pd.DataFrame(feats).to_csv(path, index=False)
    else:
        with open(path, "wb") as f:
            pickle.dump(feats, f)
    out = LoadFeats(feat_format=fmt, prefix="pre_", suffix="_suf")({"video_name": "vid", "data_path": str(tmp_path)})
    assert out["feats"].dtype == np.float32 and np.array_equal(out["feats"], feats.astype(np.float32))


def test_load_feats_sample_stride(tmp_path, feats):
    np.save(tmp_path / "v.npy", feats)
    out = LoadFeats(feat_format="npy")({"video_name": "v", "data_path": str(tmp_path), "sample_stride": 3})
    assert np.array_equal(out["feats"], feats[[0, 3, 6, 9]].astype(np.float32))


def test_load_feats_missing_and_unreadable_name_video_and_path(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        LoadFeats(feat_format="npy")({"video_name": "ghost", "data_path": str(tmp_path)})
    assert "ghost" in str(info.value) and os.path.join(str(tmp_path), "ghost.npy") in str(info.value)
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(RuntimeError) as info:
        LoadFeats(feat_format="npy")({"video_name": "bad", "data_path": str(tmp_path)})
    assert "bad" in str(info.value) and "bad.npy" in str(info.value)
    with pytest.raises(ValueError, match="npy"):
        LoadFeats(feat_format="h5")


def test_load_feats_two_folders_resized_and_concatenated(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    np.save(a / "v.npy", np.ones((4, 2), np.float32))
    np.save(b / "v.npy", np.arange(2, dtype=np.float32)[:, None])  # [2, 1]: values 0, 1
    out = LoadFeats(feat_format=["npy", "npy"])({"video_name": "v", "data_path": [str(a), str(b)]})
    assert out["feats"].shape == (4, 3)
    # linear resize 2 -> 4 with half-pixel centres samples positions -0.25, 0.25, 0.75, 1.25 (clamped)
    assert np.allclose(out["feats"][:, 2], [0.0, 0.25, 0.75, 1.0])


def test_sliding_window_trunc_pads_and_masks():
    feats = torch.arange(10, dtype=torch.float32)[:, None].repeat(1, 2)
    out = SlidingWindowTrunc()({"feats": feats, "window_size": 6, "feature_start_idx": 7, "feature_end_idx": 12})
    assert out["feats"][:, 0].tolist() == [7, 8, 9, 0, 0, 0]
    assert out["masks"].tolist() == [True, True, True, False, False, False]
    inner = SlidingWindowTrunc(with_mask=False)({"feats": feats, "window_size": 3, "feature_start_idx": 2,
                                                  "feature_end_idx": 4})
    assert inner["feats"][:, 0].tolist() == [2, 3, 4] and "masks" not in inner


def _brute_force_window(start, end, segments, thresh):
    """Independent reference: keep segments with enough overlap, clipped and shifted."""
    kept = []
    for s, e in segments:
        inter = max(0.0, min(end, e) - max(start, s))
        if inter / (e - s) >= thresh:
            kept.append([max(start, s) - start, min(end, e) - start])
    return np.array(kept, np.float32).reshape(-1, 2)


def test_sample_trunc_window_against_brute_force(seeded):
    segments = np.array([[2.0, 6.0], [10.0, 14.0], [15.0, 30.0], [33.0, 35.0]], np.float32)
    starts = set()
    for _ in range(200):
        w = sample_trunc_window(40, trunc_len=10, trunc_thresh=0.5, gt_segments=segments)
        starts.add(w.start)
        assert w.end - w.start == 10 and 0 <= w.start <= 30
        ref = _brute_force_window(w.start, w.end, segments, 0.5)
        assert len(ref) > 0 and np.allclose(w.gt_segments, ref)
    assert len(starts) > 15  # uniform over the valid starts, not a fixed one


def test_sample_trunc_window_forced_start_and_no_trunc(seeded):
    # only start 0 keeps [0, 1] fully with thresh 1
    w = sample_trunc_window(10, trunc_len=8, trunc_thresh=1.0, gt_segments=np.array([[0.0, 1.0]]))
    assert (w.start, w.end) == (0, 8) and w.gt_segments.tolist() == [[0.0, 1.0]]
    # no_trunc: every segment is either fully inside the window or fully outside
    segs = np.array([[0.0, 2.0], [3.0, 7.0]])
    for _ in range(20):
        w = sample_trunc_window(12, trunc_len=5, trunc_thresh=0.5, gt_segments=segs, no_trunc=True)
        ratios = [max(0, min(w.end, e) - max(w.start, s)) / (e - s) for s, e in segs]
        assert all(r in (0.0, 1.0) for r in ratios) and max(ratios) == 1.0


def test_sample_trunc_window_short_sequences(seeded):
    segs = np.array([[1.0, 3.0]])
    assert sample_trunc_window(5, trunc_len=8, trunc_thresh=0.5, gt_segments=segs) is None
    lengths = set()
    for _ in range(50):
        w = sample_trunc_window(20, trunc_len=30, trunc_thresh=0.1, gt_segments=np.array([[0.0, 20.0]]),
                                crop_ratio=(0.5, 0.9))
        if w is not None:
            lengths.add(w.end - w.start)
    assert lengths and min(lengths) >= 10 and max(lengths) <= 18


def test_random_trunc_contract_and_determinism(seeded):
    feats = torch.arange(30, dtype=torch.float32)[:, None].repeat(1, 4)
    base = {"feats": feats, "gt_segments": torch.tensor([[3.0, 8.0], [20.0, 26.0]]), "gt_labels": torch.tensor([1, 2])}
    t = RandomTrunc(trunc_len=10, trunc_thresh=0.5)
    torch.manual_seed(5)
    a = t(dict(base))
    torch.manual_seed(5)
    b = t(dict(base))
    assert torch.equal(a["feats"], b["feats"]) and torch.equal(a["gt_segments"], b["gt_segments"])
    start = int(a["feats"][0, 0])
    assert torch.equal(a["feats"][:, 0], torch.arange(start, start + 10, dtype=torch.float32))
    ref = _brute_force_window(start, start + 10, base["gt_segments"].numpy(), 0.5)
    assert np.allclose(a["gt_segments"].numpy(), ref) and len(a["gt_labels"]) == len(ref)
    assert a["masks"].all() and a["masks"].shape == (10,)


def test_random_trunc_pads_short_video_channel_first():
    feats = torch.ones(3, 6)  # [C, T]
    out = RandomTrunc(trunc_len=8, trunc_thresh=0.5, pad_value=-2, channel_first=True)(
        {"feats": feats, "gt_segments": torch.tensor([[1.0, 2.0]]), "gt_labels": torch.tensor([0])}
    )
    assert out["feats"].shape == (3, 8) and bool((out["feats"][:, 6:] == -2).all())
    assert out["masks"].tolist() == [True] * 6 + [False] * 2
    assert out["gt_segments"].tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize("tool", ["torchvision_align", "interpolate"])
def test_resize_feat_linear_tools_hand_worked(tool):
    feats = torch.arange(10, dtype=torch.float32)[:, None].repeat(1, 3)  # value = t
    out = ResizeFeat(tool=tool)({"feats": feats, "resize_length": 5, "duration": 10.0,
                                 "gt_segments": torch.tensor([[1.0, 4.0], [9.0, 12.0]])})
    # a ramp averaged / sampled over bins of 2 steps: bin centres 0.5, 2.5, ...
    assert out["feats"].shape == (5, 3) and torch.allclose(out["feats"][:, 0], torch.tensor([0.5, 2.5, 4.5, 6.5, 8.5]))
    assert torch.allclose(out["gt_segments"], torch.tensor([[0.5, 2.0], [4.5, 5.0]]))
    assert out["feats_len_ori"] == 10


def test_resize_feat_bmn_hand_worked_and_channel_first():
    feats = torch.arange(10, dtype=torch.float32)[None].repeat(2, 1)  # [C, T]
    out = ResizeFeat(tool="bmn_align", channel_first=True)({"feats": feats, "resize_length": 5})
    # bin 0 samples x in [0.5001, 2] (step centres at t + 0.5): mean of 0.0001, 0.75005, 1.5
    assert out["feats"].shape == (2, 5)
    assert torch.allclose(out["feats"][0], torch.tensor([0.75, 2.5, 4.5, 6.5, 8.25]), atol=1e-3)
    with pytest.raises(ValueError, match="gtad_align|torchvision_align"):
        ResizeFeat(tool="gtad_align")


def test_padding_pads_and_masks():
    feats = torch.arange(6, dtype=torch.float32).reshape(3, 2)
    out = Padding(length=5, pad_value=-1)({"feats": feats})
    assert out["feats"].shape == (5, 2)
    assert torch.equal(out["feats"][:3], feats) and bool((out["feats"][3:] == -1).all())
    assert out["masks"].tolist() == [True, True, True, False, False]
    prior = Padding(length=4)({"feats": feats, "masks": torch.tensor([True, True, False])})
    assert prior["masks"].tolist() == [True, True, False, False]


def test_padding_channel_first():
    feats = torch.ones(2, 3)  # [C, T]
    out = Padding(length=4, channel_first=True)({"feats": feats})
    assert out["feats"].shape == (2, 4) and out["masks"].tolist() == [True, True, True, False]


def test_padding_longer_sequence_is_resized_and_strides_scaled():
    feats = torch.arange(8, dtype=torch.float32).repeat(2, 1).t()  # [8, 2], value = t
    out = Padding(length=4)({"feats": feats, "snippet_stride": 4, "offset_frames": 2})
    assert out["feats"].shape == (4, 2) and bool(out["masks"].all())
    # linear resize 8 -> 4: output i samples (i + 0.5) * 2 - 0.5
    assert torch.allclose(out["feats"][:, 0], torch.tensor([0.5, 2.5, 4.5, 6.5]))
    assert out["snippet_stride"] == 8 and out["offset_frames"] == 4


def test_channel_reduction():
    feats = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    out = ChannelReduction(in_channels=6, index=[1, 4])({"feats": feats})
    assert torch.equal(out["feats"], feats[:, 1:4])
    with pytest.raises(ValueError, match="in_channels"):
        ChannelReduction(in_channels=5, index=[0, 1])({"feats": feats})
