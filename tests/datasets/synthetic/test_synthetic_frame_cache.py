"""Synthetic videos rendered into a frame cache: LoadCachedFrames reads back the renderer's own frames,
the manifest matches the one cache_video builds from the encoded mp4, reruns skip, repeats list copies."""
import json
import os

import numpy as np
import pytest
import torch

from opentad.datasets import build_dataset
from opentad.datasets.frame_cache import load_manifest
from opentad.datasets.synthetic import generate_dataset, settings_from_preset
from opentad.datasets.synthetic.frame_cache import render_frame_cache, repeat_entries
from opentad.datasets.synthetic.plan import plan_dataset
from opentad.datasets.synthetic.render import VideoRenderer
from opentad.datasets.transforms import LoadCachedFrames

SMALL = dict(num_train=2, num_test=1, num_classes=2, min_duration=3.0, max_duration=4.0, min_action=0.5,
             max_action=1.5, median_action=1.0, empty_fraction=0.0, width=48, height=32)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic_cache"))
    settings = settings_from_preset("default", dict(SMALL, write_videos=False))
    generate_dataset(settings, os.path.join(root, "data"))
    cache = os.path.join(root, "cache")
    report = render_frame_cache(settings, cache, stride=4, short_side=None)
    return dict(root=root, settings=settings, cache=cache, report=report)


def test_cached_windows_are_the_renderers_frames(rendered):
    settings, cache = rendered["settings"], rendered["cache"]
    plans = plan_dataset(settings)
    assert rendered["report"]["built"] == sorted(p.name for p in plans)
    load = LoadCachedFrames(cache_dir=cache, short_side=None, check_source=False, method="random_trunc",
                            trunc_len=24, trunc_thresh=0.5, crop_ratio=[0.9, 1.0])
    plan = plans[0]
    results = load(dict(video_name=plan.name, snippet_stride=4, fps=30.0, duration=plan.duration,
                        gt_segments=np.zeros((0, 2), np.float32), gt_labels=np.zeros(0, np.int64)))
    renderer = VideoRenderer(plan, settings)
    expected = torch.stack([torch.from_numpy(renderer.frame(int(i))).permute(2, 0, 1) for i in results["frame_inds"]])
    assert torch.equal(results["imgs"], expected)
    assert results["total_frames"] == plan.num_frames and results["original_shape"] == (32, 48)


def test_manifest_matches_the_cache_built_from_the_encoded_video(tmp_path):
    pytest.importorskip("av")
    from opentad.datasets.frame_cache import CacheSpec, cache_video

    settings = settings_from_preset("default", dict(SMALL, num_train=1, num_test=0, write_videos=True, crf=10))
    generate_dataset(settings, str(tmp_path / "data"))
    plan = plan_dataset(settings)[0]
    video = str(tmp_path / "data" / "raw_data" / "video" / f"{plan.name}.mp4")
    decoded = cache_video(video, plan.name, str(tmp_path / "from_mp4"), CacheSpec(stride=4, short_side=24))
    render_frame_cache(settings, str(tmp_path / "rendered"), stride=4, short_side=24)
    ours = load_manifest(str(tmp_path / "rendered"), plan.name)
    for key in ("stride", "short_side", "height", "width", "source_height", "source_width", "total_frames",
                "num_frames", "fps", "format"):
        assert ours[key] == decoded[key], key
    a = np.load(tmp_path / "rendered" / f"{plan.name}.npy").astype(np.float32)
    b = np.load(tmp_path / "from_mp4" / f"{plan.name}.npy").astype(np.float32)
    distance = np.abs(a[:, None] - b[None]).mean(axis=(2, 3, 4))  # [rendered frame, decoded frame]
    assert np.array_equal(distance.argmin(axis=1), np.arange(len(a)))  # each is nearest to its own decoded frame
    assert distance.diagonal().mean() < 4.0  # yuv420p's halved chroma and H.264 at crf 10


def test_rerun_skips_fresh_entries_and_other_settings_rebuild(rendered, tmp_path):
    again = render_frame_cache(rendered["settings"], rendered["cache"], stride=4, short_side=None)
    assert again["built"] == [] and len(again["fresh"]) == 3
    other = settings_from_preset("default", dict(SMALL, write_videos=False, seed=1))
    assert len(render_frame_cache(other, str(tmp_path / "c"), stride=4, short_side=None)["built"]) == 3
    with pytest.raises(ValueError, match="training"):
        render_frame_cache(other, str(tmp_path / "c"), subsets=("training",))


def test_repeated_entries_are_copies_of_the_same_videos(rendered):
    data = os.path.join(rendered["root"], "data")
    path = repeat_entries(data, rendered["cache"], repeat=3)
    with open(os.path.join(data, "annotations", "thumos_14_anno.json")) as f:
        original = json.load(f)["database"]
    with open(path) as f:
        repeated = json.load(f)["database"]
    train = [n for n, v in original.items() if v["subset"] == "validation"]
    assert len(repeated) == len(original) + 2 * len(train)
    for name in train:
        for k in (1, 2):
            assert repeated[f"{name}_rep{k}"] == original[name]
            copy = np.load(os.path.join(rendered["cache"], f"{name}_rep{k}.npy"))
            assert np.array_equal(copy, np.load(os.path.join(rendered["cache"], f"{name}.npy")))
    dataset = build_dataset(dict(
        type="ThumosPaddingDataset", ann_file=path, subset_name="validation", class_map=os.path.join(
            data, "annotations", "category_idx.txt"), data_path=data, feature_stride=4, sample_stride=1,
        pipeline=[]))
    assert len(dataset) == 3 * len(train)
