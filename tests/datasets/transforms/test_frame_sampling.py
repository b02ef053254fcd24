"""LoadFrames on hand-worked examples (indices, masks, ground-truth arithmetic)."""
import numpy as np
import pytest
import torch

from opentad.datasets.transforms import LoadFrames, LoadSnippetFrames


def test_resize_hand_worked():
    out = LoadFrames(method="resize", scale_factor=2)(
        {"total_frames": 100, "resize_length": 4, "duration": 10.0, "gt_segments": np.array([[1.0, 3.0], [8.0, 12.0]])}
    )
    # 8 frames, stride 12.5: (k + 0.5) * 12.5 - 0.5 = 5.75, 18.25, 30.75, ... rounded
    assert out["frame_inds"].tolist() == [6, 18, 31, 43, 56, 68, 81, 93]
    assert out["frame_inds"].dtype == np.int64
    assert out["masks"].tolist() == [True] * 4 and out["masks"].dtype == torch.bool
    # seconds -> [0, 1] of the video (clipped) -> resize_length units
    assert np.allclose(out["gt_segments"], [[0.4, 1.2], [3.2, 4.0]])
    assert out["num_clips"] == 1 and out["clip_len"] == 8


def test_sliding_window_hand_worked_with_padding():
    out = LoadFrames(method="sliding_window", scale_factor=2)(
        {"total_frames": 50, "snippet_stride": 4, "window_size": 8, "feature_start_idx": 8, "feature_end_idx": 15}
    )
    # frame stride 4 // 2 = 2; samples 0, 2, ..., 48 (25); window samples 16..31 -> only 16..24 exist
    assert out["frame_inds"].tolist() == list(range(32, 50, 2)) + [48] * 7
    assert out["masks"].tolist() == [True] * 4 + [False] * 4  # 9 valid samples // 2
    assert out["clip_len"] == 16


def test_sliding_window_full_window():
    out = LoadFrames(method="sliding_window")(
        {"total_frames": 100, "snippet_stride": 4, "window_size": 5, "feature_start_idx": 2, "feature_end_idx": 6}
    )
    assert out["frame_inds"].tolist() == [8, 12, 16, 20, 24] and bool(out["masks"].all())


def test_random_trunc_forced_window(seeded):
    # 20 samples (stride 2); window of 4 snippets = 8 samples; gt [8, 10] snippets = samples [16, 20]
    # with trunc_thresh 1 only the window starting at sample 12 keeps it whole.
    out = LoadFrames(method="random_trunc", trunc_len=4, trunc_thresh=1.0, scale_factor=2)(
        {
            "total_frames": 40,
            "snippet_stride": 4,
            "gt_segments": np.array([[0.0, 1.0], [8.0, 10.0]], np.float32),
            "gt_labels": np.array([5, 7]),
        }
    )
    assert out["frame_inds"].tolist() == list(range(24, 40, 2))
    assert np.allclose(out["gt_segments"], [[2.0, 4.0]])  # ([16, 20] - 12) / 2
    assert out["gt_labels"].tolist() == [7]
    assert out["masks"].tolist() == [True] * 4


def test_random_trunc_short_video_is_padded_and_gt_unchanged():
    gt = np.array([[1.0, 2.0]], np.float32)
    out = LoadFrames(method="random_trunc", trunc_len=8, trunc_thresh=0.5)(
        {"total_frames": 20, "snippet_stride": 4, "gt_segments": gt, "gt_labels": np.array([0])}
    )
    assert out["frame_inds"].tolist() == [0, 4, 8, 12, 16, 16, 16, 16]
    assert out["masks"].tolist() == [True] * 5 + [False] * 3
    assert np.array_equal(out["gt_segments"], gt)


def _brute_force_gt(start, trunc_len, segments, thresh):
    kept = []
    for s, e in segments:
        left, right = max(start, s), min(start + trunc_len, e)
        if max(0.0, right - left) / (e - s) >= thresh:
            kept.append([left - start, right - start])
    return np.array(kept, np.float32).reshape(-1, 2)


def test_random_trunc_windows_against_brute_force(seeded):
    segments = np.array([[3.0, 9.0], [20.0, 24.0], [30.0, 45.0]], np.float32)
    t = LoadFrames(method="random_trunc", trunc_len=16, trunc_thresh=0.75)
    starts = set()
    for _ in range(100):
        out = t({"total_frames": 200, "snippet_stride": 4, "gt_segments": segments.copy(),
                 "gt_labels": np.arange(3)})
        start = out["frame_inds"][0] // 4
        starts.add(start)
        assert out["frame_inds"].tolist() == list(range(4 * start, 4 * start + 64, 4))
        ref = _brute_force_gt(start, 16, segments, 0.75)
        assert len(ref) > 0 and np.allclose(out["gt_segments"], ref)
    assert len(starts) > 10


def test_random_trunc_is_deterministic_under_seed():
    t = LoadFrames(method="random_trunc", trunc_len=16, trunc_thresh=0.5, crop_ratio=[0.9, 1.0])
    sample = {"total_frames": 300, "snippet_stride": 4, "gt_segments": np.array([[10.0, 40.0]]),
              "gt_labels": np.array([1])}
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        runs.append([t(dict(sample))["frame_inds"].tolist() for _ in range(3)])
    assert runs[0] == runs[1] and len({tuple(r) for r in runs[0]}) > 1


def test_errors():
    with pytest.raises(ValueError, match="random_trunc"):
        LoadFrames(method="random_trunk")
    with pytest.raises(ValueError, match="trunc_len"):
        LoadFrames(method="random_trunc")
    with pytest.raises(NotImplementedError, match="padding"):
        LoadFrames(method="padding")({"total_frames": 10})
    with pytest.raises(ValueError, match="scale_factor"):
        LoadFrames(method="sliding_window", scale_factor=3)(
            {"total_frames": 10, "snippet_stride": 4, "window_size": 2, "feature_start_idx": 0, "feature_end_idx": 1}
        )


def test_load_snippet_frames_resize_hand_worked():
    out = LoadSnippetFrames(clip_len=4, frame_interval=2, method="resize")({"total_frames": 40, "resize_length": 4})
    # centres (k + 0.5) * 10 - 0.5 = 4.5, 14.5, ...; offsets 2 * [-2, -1, 0, 1]; rounded half to even
    assert out["frame_inds"].tolist() == [[0, 2, 4, 6], [10, 12, 14, 16], [20, 22, 24, 26], [30, 32, 34, 36]]
    assert out["num_clips"] == 4 and out["clip_len"] == 4 and out["masks"].tolist() == [True] * 4


def test_load_snippet_frames_sliding_window_clips_at_video_end():
    out = LoadSnippetFrames(clip_len=4, method="sliding_window")(
        {"total_frames": 18, "snippet_stride": 8, "window_size": 3, "feature_start_idx": 1, "feature_end_idx": 3}
    )
    # centres 8, 16 (then 16 repeated as padding); clip offsets -2..1, clipped to 17
    assert out["frame_inds"].tolist() == [[6, 7, 8, 9], [14, 15, 16, 17], [14, 15, 16, 17]]
    assert out["masks"].tolist() == [True, True, False]
