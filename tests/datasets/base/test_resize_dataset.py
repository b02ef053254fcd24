"""ResizeDataset: upstream's keys and sample dict, one sample per video, seconds resized by the pipeline.

The reference video lasts 10 s; a resize pipeline maps seconds to steps by
``clip(t / 10, 0, 1) * resize_length``: with ``resize_length=8``,
``[2.5, 5.0] -> [2, 4]`` and ``[7.5, 12.0] -> [6, 8]`` (clipped at the end).
"""
import json

import numpy as np
import pytest
import torch

from opentad.datasets.base import ResizeDataset
from opentad.registry import DATASETS, ConfigError, build, check_binding

VIDEOS = {
    "v1": {"subset": "training", "duration": 10, "annotations": [
        {"label": "A", "segment": [2.5, 5.0]}, {"label": "B", "segment": [7.5, 12.0]}]},
    "v2": {"subset": "training", "duration": 4.0, "annotations": []},
    "v3": {"subset": "validation", "duration": 8.0, "annotations": [{"label": "A", "segment": [1.0, 2.0]}]},
}


class SecondsResize(ResizeDataset):
    """Test-local subclass: every annotation as it is, in seconds; None for a video without any."""

    def get_gt(self, video_name, video_info):
        annos = video_info["annotations"]
        if not annos:
            return None
        return dict(gt_segments=np.array([a["segment"] for a in annos], dtype=np.float32),
                    gt_labels=np.array([self.label_index(a["label"], video_name) for a in annos], dtype=np.int64))


@pytest.fixture
def files(tmp_path):
    ann = tmp_path / "anno.json"
    ann.write_text(json.dumps({"database": VIDEOS}))
    class_map = tmp_path / "classes.txt"
    class_map.write_text("A\nB\n")
    return dict(ann_file=str(ann), class_map=str(class_map), data_path="feats/", pipeline=[])


def test_sample_dict_is_upstreams(files):
    ds = SecondsResize(subset_name="training", resize_length=8, sample_stride=2, **files)
    assert [d[0] for d in ds.data_list] == ["v1"]  # v2 has no ground truth, v3 another subset
    sample = ds.sample_dict(0)
    assert set(sample) == {"video_name", "data_path", "resize_length", "sample_stride", "fps", "duration",
                           "gt_segments", "gt_labels"}
    assert (sample["video_name"], sample["data_path"], sample["resize_length"], sample["sample_stride"]) == (
        "v1", "feats/", 8, 2)
    assert sample["fps"] == -1  # the resize setting of post-processing
    assert sample["duration"] == 10.0 and isinstance(sample["duration"], float)
    assert sample["gt_segments"].dtype == np.float32
    assert np.array_equal(sample["gt_segments"], [[2.5, 5.0], [7.5, 12.0]])  # seconds, untouched
    assert sample["gt_labels"].tolist() == [0, 1]


def test_test_mode_keeps_every_video_without_ground_truth(files):
    ds = SecondsResize(subset_name=["training", "validation"], test_mode=True, **files)
    assert [d[0] for d in ds.data_list] == ["v1", "v2", "v3"]
    assert "gt_segments" not in ds.sample_dict(1) and ds.sample_dict(1)["resize_length"] == 128  # upstream default


def test_resize_feat_pipeline_scales_seconds_to_steps_and_keeps_stored_gt(files, tmp_path):
    feats = tmp_path / "feats"
    feats.mkdir()
    np.save(feats / "v1.npy", np.arange(40 * 3, dtype=np.float32).reshape(40, 3))
    pipeline = [
        dict(type="LoadFeats", feat_format="npy"),
        dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
        dict(type="ResizeFeat", tool="interpolate"),
        dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
        dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
    ]
    ds = SecondsResize(**dict(files, data_path=str(feats), pipeline=pipeline), subset_name="training",
                       resize_length=8)
    sample = ds[0]
    assert sample["inputs"].shape == (3, 8)
    # clip(t / 10, 0, 1) * 8 in float32: 2.5 / 10 * 8 = 2 and 5 / 10 * 8 = 4 exactly; 7.5 -> 6; 12 -> clipped to 8
    assert torch.equal(sample["gt_segments"], torch.tensor([[2.0, 4.0], [6.0, 8.0]]))
    assert sample["metas"]["resize_length"] == 8 and sample["metas"]["fps"] == -1


def test_pipeline_changes_in_place_do_not_reach_the_stored_gt(files):
    def double(results):  # a transform that edits the arrays it is given in place
        results["gt_segments"] *= 2
        results["gt_labels"] *= 2
        return results

    ds = SecondsResize(**dict(files, pipeline=[double]), subset_name="training")
    assert np.array_equal(ds[0]["gt_segments"], [[5.0, 10.0], [15.0, 24.0]])
    assert np.array_equal(ds.sample_dict(0)["gt_segments"], [[2.5, 5.0], [7.5, 12.0]])
    assert ds.sample_dict(0)["gt_labels"].tolist() == [0, 1]


def test_registered_with_upstreams_keys_only(files):
    assert DATASETS.get("ResizeDataset") is ResizeDataset
    cfg = dict(type="ResizeDataset", subset_name="training", resize_length=8, **files)
    check_binding(ResizeDataset, {k: v for k, v in cfg.items() if k != "type"}, path="dataset.train")
    for key in ("feature_stride", "offset_frames", "fps"):  # not keys of upstream's ResizeDataset
        with pytest.raises(ConfigError, match=key):
            build(dict(cfg, **{key: 1}), DATASETS)


def test_base_class_has_no_ground_truth(files):
    with pytest.raises(NotImplementedError, match="get_gt"):
        ResizeDataset(subset_name="training", **files)
    assert len(ResizeDataset(subset_name="training", test_mode=True, **files)) == 2  # inference needs none


@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_resize_length_must_be_a_positive_integer(files, value):
    with pytest.raises(ValueError, match="resize_length"):
        SecondsResize(subset_name="training", resize_length=value, **files)
