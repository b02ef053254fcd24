"""THUMOS datasets: window and padding arithmetic on hand-worked examples, ground truth, subsets, bad input.

The reference video (``VIDEO``) lasts 10 s with 100 frames; features every
4 frames (snippet stride 4), so there are 25 snippet centres 0, 4, ..., 96.
Its segments in seconds become frames by ``int(t / 10 * 100)``:

    A [0.53, 2.09] -> [5, 20]     B [2.6, 3.0] -> [26, 30]     A [7.0, 9.9] -> [70, 99]
"""
import json
import logging

import numpy as np
import pytest

from opentad.datasets import ThumosPaddingDataset, ThumosSlidingDataset, build_dataset
from opentad.datasets.base import compute_gt_completeness
from opentad.registry import TRANSFORMS, ConfigError

CLASSES = ["A", "B", "C"]
VIDEO = {
    "subset": "training",
    "duration": 10.0,
    "frame": 100,
    "annotations": [
        {"label": "A", "segment": [0.53, 2.09]},
        {"label": "B", "segment": [2.6, 3.0]},
        {"label": "A", "segment": [7.0, 9.9]},
    ],
}


@TRANSFORMS.register_module(name="TestDatasetsMarkVisited", force=True)
class MarkVisited:
    """Test-local transform: records that it ran and doubles ``gt_segments`` / ``gt_labels`` in place."""

    def __init__(self, *, tag: str):
        self.tag = tag

    def __call__(self, results):
        results["visited"] = self.tag
        if "gt_segments" in results:
            results["gt_segments"] *= 2
            results["gt_labels"] *= 2
        return results


def write_files(tmp_path, database, classes=CLASSES):
    """Write the annotation file and (unless ``classes`` is None) the class map; return both paths."""
    ann = tmp_path / "anno.json"
    ann.write_text(json.dumps({"database": database}))
    class_map = tmp_path / "classes.txt"
    if classes is not None:
        class_map.write_text("".join(f"{c}\n" for c in classes))
    return str(ann), str(class_map)


def make(cls, tmp_path, database, classes=CLASSES, **kwargs):
    ann, class_map = write_files(tmp_path, database, classes)
    args = dict(ann_file=ann, subset_name="training", data_path="feats/", pipeline=[], class_map=class_map,
                feature_stride=4)
    args.update(kwargs)
    return cls(**args)


def sliding(tmp_path, database=None, **kwargs):
    kwargs.setdefault("window_size", 8)
    return make(ThumosSlidingDataset, tmp_path, database or {"v1": VIDEO}, **kwargs)


# --------------------------------------------------------------------------- sliding windows
def test_sliding_windows_hand_worked(tmp_path):
    # 25 snippets, window 8, stride int(8 * 0.75) = 6, 25 // 6 = 4 loop steps:
    # [0,8) [6,14) [12,20) then [18,26) runs past 25 -> moved to [17,25) (last).
    # Frame spans: [0,28] [24,52] [48,76] [68,96]. Completeness (> 0.75 kept):
    #   w0: A[5,20] 1.0 kept; B[26,30] -> [26,28] 0.5 dropped
    #   w1: B[26,30] 1.0 kept
    #   w2: A[70,99] -> [70,76] 6/29 dropped -> window dropped
    #   w3: A[70,99] -> [70,96] 26/29 kept, truncated to [70,96]
    ds = sliding(tmp_path)
    got = [ds.sample_dict(i) for i in range(len(ds))]
    assert [(s["feature_start_idx"], s["feature_end_idx"], s["window_start_frame"]) for s in got] == [
        (0, 7, 0),
        (6, 13, 24),
        (17, 24, 68),
    ]
    expected_gt = [[[5 / 4, 20 / 4]], [[(26 - 24) / 4, (30 - 24) / 4]], [[(70 - 68) / 4, (96 - 68) / 4]]]
    for sample, gt, label in zip(got, expected_gt, [0, 1, 0]):
        np.testing.assert_allclose(sample["gt_segments"], gt)
        assert sample["gt_segments"].dtype == np.float32
        assert sample["gt_labels"].tolist() == [label]
        assert sample["window_size"] == 8 and sample["snippet_stride"] == 4 and sample["fps"] == 10.0
    assert ds.num_videos == 1


def test_sliding_sample_keys_match_upstream(tmp_path):
    sample = sliding(tmp_path).sample_dict(0)
    assert set(sample) == {
        "video_name", "data_path", "window_size", "feature_start_idx", "feature_end_idx", "sample_stride",
        "fps", "snippet_stride", "window_start_frame", "duration", "offset_frames", "gt_segments", "gt_labels",
    }


def test_sliding_offset_frames_shift_gt(tmp_path):
    ds = sliding(tmp_path, offset_frames=8)
    # same windows (completeness is computed without the offset), gt moved by 8 / 4 = 2 snippets
    np.testing.assert_allclose(ds.sample_dict(0)["gt_segments"], [[5 / 4 - 2, 20 / 4 - 2]])
    np.testing.assert_allclose(ds.sample_dict(2)["gt_segments"], [[0.5 - 2, 7.0 - 2]])


def test_sliding_test_mode_keeps_every_window_without_gt(tmp_path):
    ds = sliding(tmp_path, test_mode=True)
    got = [ds.sample_dict(i) for i in range(len(ds))]
    assert [(s["feature_start_idx"], s["feature_end_idx"]) for s in got] == [(0, 7), (6, 13), (12, 19), (17, 24)]
    assert all("gt_segments" not in s and "gt_labels" not in s for s in got)


def test_sliding_ioa_zero_keeps_full_gt_in_every_window(tmp_path):
    ds = sliding(tmp_path, ioa_thresh=0)
    assert len(ds) == 4
    sample = ds.sample_dict(2)  # window starting at frame 48
    frames = np.array([[5, 20], [26, 30], [70, 99]])
    np.testing.assert_allclose(sample["gt_segments"], (frames - 48) / 4)


@pytest.mark.parametrize(
    "frames, window, overlap, expected",
    [
        # 11 snippets, stride 3: 11 // 3 = 3 steps; snippet 10 is left uncovered (upstream behaviour)
        (44, 4, 0.25, [(0, 3), (3, 6), (6, 9)]),
        # 5 snippets, shorter than one window: one window over all of them
        (20, 8, 0.25, [(0, 4)]),
        # 12 snippets, stride 2 (overlap 0.5): 6 steps, the last moved back to end at 12
        (48, 4, 0.5, [(0, 3), (2, 5), (4, 7), (6, 9), (8, 11), (8, 11)]),
    ],
)
def test_sliding_window_ranges(tmp_path, frames, window, overlap, expected):
    video = dict(VIDEO, frame=frames, duration=frames / 10)
    ds = sliding(tmp_path, {"v": video}, window_size=window, window_overlap_ratio=overlap, test_mode=True)
    got = [(ds.sample_dict(i)["feature_start_idx"], ds.sample_dict(i)["feature_end_idx"]) for i in range(len(ds))]
    assert got == expected


def test_sliding_fps_counts_frames_from_duration(tmp_path):
    # fps=5: int(10 * 5) = 50 frames -> 13 snippets (0..48); 13 // 6 = 2 steps: [0,8), then [5,13)
    ds = sliding(tmp_path, fps=5, test_mode=True)
    assert [(ds.sample_dict(i)["feature_start_idx"], ds.sample_dict(i)["window_start_frame"]) for i in range(2)] == [
        (0, 0),
        (5, 20),
    ]
    assert len(ds) == 2


def test_compute_gt_completeness_by_hand():
    segments = np.array([[0, 10], [5, 15], [20, 30], [12, 12], [11, 19]])
    completeness, truncated = compute_gt_completeness(segments, (10, 20))
    # touching the window's edge is no overlap; a zero-length segment has completeness 0
    np.testing.assert_allclose(completeness, [0, 0.5, 0, 0, 1])
    np.testing.assert_allclose(truncated, [[10, 10], [10, 15], [20, 20], [12, 12], [11, 19]])


def test_sliding_ioa_thresh_is_strict(tmp_path):
    # in window [0, 28], B [26, 30] is exactly half inside
    at_half = sliding(tmp_path, ioa_thresh=0.5).sample_dict(0)
    assert at_half["gt_labels"].tolist() == [0]
    below = sliding(tmp_path, ioa_thresh=0.49).sample_dict(0)
    assert below["gt_labels"].tolist() == [0, 1]
    np.testing.assert_allclose(below["gt_segments"][1], [26 / 4, 28 / 4])


def test_sliding_rejects_zero_stride(tmp_path):
    with pytest.raises(ValueError, match="window stride"):
        sliding(tmp_path, window_overlap_ratio=1.0)


# --------------------------------------------------------------------------- padding
def test_padding_sample_hand_worked(tmp_path):
    ds = make(ThumosPaddingDataset, tmp_path, {"v1": VIDEO}, offset_frames=8, sample_stride=2)
    sample = ds.sample_dict(0)
    assert set(sample) == {
        "video_name", "data_path", "sample_stride", "snippet_stride", "fps", "duration", "offset_frames",
        "gt_segments", "gt_labels",
    }
    # snippet stride 4 * 2 = 8; (frame - 8) / 8
    np.testing.assert_allclose(sample["gt_segments"], [[-3 / 8, 12 / 8], [18 / 8, 22 / 8], [62 / 8, 91 / 8]])
    assert sample["gt_labels"].tolist() == [0, 1, 0] and sample["gt_labels"].dtype == np.int64
    assert (sample["snippet_stride"], sample["sample_stride"], sample["fps"], sample["duration"]) == (8, 2, 10.0, 10.0)
    assert sample["video_name"] == "v1" and sample["data_path"] == "feats/"


def test_getitem_runs_pipeline_and_does_not_alter_stored_gt(tmp_path):
    ds = make(ThumosPaddingDataset, tmp_path, {"v1": VIDEO},
              pipeline=[dict(type="TestDatasetsMarkVisited", tag="x")])
    first = ds[0]
    second = ds[0]
    assert first["visited"] == "x"
    np.testing.assert_allclose(first["gt_segments"], second["gt_segments"])
    np.testing.assert_allclose(first["gt_segments"][0], [2 * 5 / 4, 2 * 20 / 4])
    assert second["gt_labels"].tolist() == [0, 2, 0]
    sliding_ds = sliding(tmp_path, pipeline=[dict(type="TestDatasetsMarkVisited", tag="y")])
    assert sliding_ds[2]["gt_segments"].tolist() == sliding_ds[2]["gt_segments"].tolist() == [[1.0, 14.0]]


# --------------------------------------------------------------------------- ground truth
def test_ambiguous_skipped_and_duplicates_removed(tmp_path):
    video = dict(VIDEO, annotations=[
        {"label": "A", "segment": [1.0, 2.0]},
        {"label": "Ambiguous", "segment": [3.0, 4.0]},
        {"label": "A", "segment": [1.0, 2.0]},  # exact repeat: dropped
        {"label": "B", "segment": [1.0, 2.0]},  # same segment, other label: kept
    ])
    only_ambiguous = dict(VIDEO, annotations=[{"label": "Ambiguous", "segment": [3.0, 4.0]}])
    ds = make(ThumosPaddingDataset, tmp_path, {"v1": video, "v2": only_ambiguous})
    assert [entry[0] for entry in ds.data_list] == ["v1"]  # no valid gt: not used for training
    sample = ds.sample_dict(0)
    np.testing.assert_allclose(sample["gt_segments"], [[10 / 4, 20 / 4], [10 / 4, 20 / 4]])
    assert sample["gt_labels"].tolist() == [0, 1]
    test_ds = make(ThumosPaddingDataset, tmp_path, {"v1": video, "v2": only_ambiguous}, test_mode=True)
    assert [entry[0] for entry in test_ds.data_list] == ["v1", "v2"]


def test_filter_gt_drops_segments_shorter_than_a_frame(tmp_path):
    video = dict(VIDEO, annotations=[{"label": "A", "segment": [1.0, 1.05]}, {"label": "B", "segment": [2.0, 3.0]}])
    kept = make(ThumosPaddingDataset, tmp_path, {"v": video}).sample_dict(0)
    assert kept["gt_labels"].tolist() == [0, 1]  # [10, 10] in frames is kept without filter_gt
    filtered = make(ThumosPaddingDataset, tmp_path, {"v": video}, filter_gt=True).sample_dict(0)
    assert filtered["gt_labels"].tolist() == [1]


def test_class_agnostic_labels_are_zero(tmp_path):
    ds = make(ThumosPaddingDataset, tmp_path, {"v1": VIDEO}, class_agnostic=True)
    assert ds.sample_dict(0)["gt_labels"].tolist() == [0, 0, 0]


# --------------------------------------------------------------------------- subsets and block list
DB = {
    "t1": VIDEO,
    "t2": VIDEO,
    "v1": dict(VIDEO, subset="validation"),
    "x1": dict(VIDEO, subset="testing"),
}


def names(ds):
    return [entry[0] for entry in ds.data_list]


def test_subset_string_and_list(tmp_path):
    assert names(make(ThumosPaddingDataset, tmp_path, DB)) == ["t1", "t2"]
    both = make(ThumosPaddingDataset, tmp_path, DB, subset_name=["training", "validation"])
    assert names(both) == ["t1", "t2", "v1"]
    # exact names: "test" does not select "testing"
    with pytest.raises(ValueError, match="subset"):
        make(ThumosPaddingDataset, tmp_path, DB, subset_name="test")


def test_block_list_as_list_and_file(tmp_path):
    assert names(make(ThumosPaddingDataset, tmp_path, DB, block_list=["t1"])) == ["t2"]
    block_file = tmp_path / "missing_files.txt"
    block_file.write_text("t2\n\n")
    assert names(make(ThumosPaddingDataset, tmp_path, DB, block_list=str(block_file))) == ["t1"]


def test_missing_block_list_file_is_named(tmp_path):
    missing = str(tmp_path / "nope" / "missing_files.txt")
    with pytest.raises(FileNotFoundError, match="missing_files.txt"):
        make(ThumosPaddingDataset, tmp_path, DB, block_list=missing)


def test_empty_subset_names_subset_file_and_present_subsets(tmp_path):
    with pytest.raises(ValueError) as info:
        make(ThumosPaddingDataset, tmp_path, DB, subset_name="train")
    message = str(info.value)
    assert "'train'" in message and "anno.json" in message
    assert "['testing', 'training', 'validation']" in message


def test_all_videos_blocked_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="2 blocked"):
        make(ThumosPaddingDataset, tmp_path, DB, block_list=["t1", "t2"])


# --------------------------------------------------------------------------- bad input
def test_bad_segments_skipped_with_one_warning(tmp_path, caplog):
    bad = [
        {"label": "A", "segment": [3.0, 3.0]},  # end == start
        {"label": "A", "segment": [4.0, 2.0]},  # end < start
        {"label": "B", "segment": [-0.5, 1.0]},  # before 0
        {"label": "B", "segment": [9.0, 10.5]},  # after the duration
    ]
    good = {"label": "C", "segment": [5.0, 6.0]}
    db = {"a": dict(VIDEO, annotations=bad[:2] + [good]), "b": dict(VIDEO, annotations=bad[2:] + [good])}
    with caplog.at_level(logging.WARNING, logger="opentad"):
        ds = make(ThumosPaddingDataset, tmp_path, db)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 4 segment(s)" in warnings[0].getMessage() and "anno.json" in warnings[0].getMessage()
    for i in range(2):
        assert ds.sample_dict(i)["gt_labels"].tolist() == [2]


def test_unknown_label_names_label_video_and_file(tmp_path):
    video = dict(VIDEO, annotations=[{"label": "Nope", "segment": [1.0, 2.0]}])
    with pytest.raises(ValueError) as info:
        make(ThumosPaddingDataset, tmp_path, {"vid_x": video})
    assert "'Nope'" in str(info.value) and "vid_x" in str(info.value) and "anno.json" in str(info.value)


@pytest.mark.parametrize("cls", [ThumosPaddingDataset, ThumosSlidingDataset])
def test_unknown_label_is_an_error_in_test_mode_too(tmp_path, cls):
    """The test split's labels are checked when the dataset is built (before a run's first epoch)."""
    video = dict(VIDEO, subset="test", annotations=VIDEO["annotations"] + [{"label": "Nope", "segment": [1.0, 2.0]}])
    kwargs = dict(subset_name="test", test_mode=True, window_size=8) if cls is ThumosSlidingDataset else dict(
        subset_name="test", test_mode=True)
    with pytest.raises(ValueError) as info:
        make(cls, tmp_path, {"vid_t": video}, **kwargs)
    assert "'Nope'" in str(info.value) and "vid_t" in str(info.value) and "anno.json" in str(info.value)
    # the same video with only known and ignored labels (a reversed segment included) builds
    fine = dict(video, annotations=VIDEO["annotations"] + [{"label": "Ambiguous", "segment": [1.0, 2.0]},
                                                           {"label": "B", "segment": [5.0, 4.0]}])
    assert len(make(cls, tmp_path, {"vid_t": fine}, **kwargs)) >= 1


def test_missing_class_map_is_generated_and_logged(tmp_path, caplog):
    db = {"a": VIDEO, "b": dict(VIDEO, subset="validation", annotations=[
        {"label": "Zed", "segment": [1.0, 2.0]}, {"label": "Ambiguous", "segment": [3.0, 4.0]}])}
    with caplog.at_level(logging.INFO, logger="opentad"):
        ds = make(ThumosPaddingDataset, tmp_path, db, classes=None)
    assert (tmp_path / "classes.txt").read_text().splitlines() == ["A", "B", "Zed"]
    assert ds.class_map == ["A", "B", "Zed"]
    assert any("generated" in r.getMessage() and "classes.txt" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("content", ["{not json", json.dumps({"videos": {}}), json.dumps([1, 2])])
def test_bad_annotation_file_is_named(tmp_path, content):
    ann = tmp_path / "broken.json"
    ann.write_text(content)
    (tmp_path / "classes.txt").write_text("A\n")
    with pytest.raises(ValueError, match="broken.json"):
        ThumosPaddingDataset(ann_file=str(ann), subset_name="training", data_path="", pipeline=[],
                             class_map=str(tmp_path / "classes.txt"), feature_stride=4)


@pytest.mark.parametrize("test_mode", [False, True])
def test_missing_frame_field_is_named(tmp_path, test_mode):
    video = {k: v for k, v in VIDEO.items() if k != "frame"}
    with pytest.raises(ValueError) as info:
        make(ThumosSlidingDataset, tmp_path, {"vid_q": video}, window_size=8, test_mode=test_mode)
    assert "'frame'" in str(info.value) and "vid_q" in str(info.value) and "anno.json" in str(info.value)


def test_zero_duration_is_named(tmp_path):
    with pytest.raises(ValueError, match="vid_z.*duration"):
        make(ThumosPaddingDataset, tmp_path, {"vid_z": dict(VIDEO, duration=0)})


# --------------------------------------------------------------------------- building from configs
def test_build_dataset_from_config_and_unknown_key(tmp_path):
    ann, class_map = write_files(tmp_path, {"v1": VIDEO})
    cfg = dict(type="ThumosSlidingDataset", ann_file=ann, subset_name="training", data_path="", pipeline=[],
               class_map=class_map, feature_stride=4, window_size=8)
    ds = build_dataset(cfg)
    assert isinstance(ds, ThumosSlidingDataset) and len(ds) == 3
    with pytest.raises(ConfigError, match="logger"):
        build_dataset(dict(cfg, logger=None))
