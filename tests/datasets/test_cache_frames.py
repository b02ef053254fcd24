"""The frame cache: same windows, frames and ground truth as the raw-video path; stale entries are caught."""
import json
import os
import runpy

import av
import cv2
import numpy as np
import pytest
import torch

from opentad.datasets.frame_cache import CacheError, CacheSpec, build_cache, cache_video, check_cache, load_manifest
from opentad.datasets.frame_cache import manifest as manifest_module
from opentad.datasets.transforms import LoadCachedFrames
from opentad.transforms import Compose

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
W, H = 80, 48  # short side 48 -> cached at short side 36: 60 x 36


def _write_video(path, num_frames, seed):
    """A smooth texture sliding by a pixel a frame, so every frame differs (H.264, GOP 10, B-frames)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(H // 12 + 2, (W + num_frames) // 12 + 2, 3)).astype(np.float32)
    grey = coarse.mean(-1, keepdims=True)
    coarse = (grey + 0.5 * (coarse - grey)).astype(np.uint8)  # half-saturated colours, as in natural video
    texture = cv2.resize(coarse, (W + num_frames, H), interpolation=cv2.INTER_CUBIC)
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.options = {"g": "10", "bf": "2", "crf": "18"}
    for i in range(num_frames):
        img = np.ascontiguousarray(texture[:, i : i + W])
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """``long`` (150 frames) and ``short`` (50 frames) in a folder."""
    folder = tmp_path_factory.mktemp("cache_videos")
    _write_video(folder / "long.mp4", 150, 0)
    _write_video(folder / "short.mp4", 50, 1)
    return str(folder)


def _pairs(folder, names=("long", "short")):
    return [(n, os.path.join(folder, f"{n}.mp4")) for n in names]


@pytest.fixture(scope="module")
def caches(videos, tmp_path_factory):
    out = {}
    for fmt in ("npy", "jpeg"):
        out[fmt] = str(tmp_path_factory.mktemp(f"cache_{fmt}"))
        build_cache(_pairs(videos), out[fmt], CacheSpec(stride=4, short_side=36, format=fmt), workers=1)
    return out


def _sample(videos, name, snippet_stride=4):
    gt = {"long": [[2.0, 9.0], [20.0, 31.0], [33.0, 36.5]], "short": [[1.0, 6.5]]}[name]
    return dict(video_name=name, data_path=videos, snippet_stride=snippet_stride,
                gt_segments=np.array(gt, np.float32), gt_labels=np.arange(len(gt)),
                window_size=16, feature_start_idx=3, feature_end_idx=18)


def _raw_pipeline(frames_cfg):
    return Compose([dict(type="PrepareVideoInfo"), dict(type="mmaction.DecordInit"),
                    dict(type="LoadFrames", **frames_cfg), dict(type="mmaction.DecordDecode"),
                    dict(type="mmaction.Resize", scale=(-1, 36))])


def _cached_pipeline(cache_dir, frames_cfg):
    return Compose([dict(type="LoadCachedFrames", cache_dir=cache_dir, short_side=36, **frames_cfg)])


TRUNC = dict(method="random_trunc", trunc_len=16, trunc_thresh=0.5, crop_ratio=[0.9, 1.0])
CASES = [("long", TRUNC), ("short", TRUNC), ("long", dict(method="sliding_window")),
         ("long", dict(TRUNC, scale_factor=2, trunc_len=8))]


@pytest.mark.parametrize("name, frames_cfg", CASES)
def test_npy_cache_gives_the_raw_path_exactly(videos, caches, tmp_path, name, frames_cfg):
    if frames_cfg.get("scale_factor") == 2:  # snippet stride 4 at 2 frames per snippet: every 2nd frame
        cache_dir = str(tmp_path)
        build_cache(_pairs(videos), cache_dir, CacheSpec(stride=2, short_side=36), workers=1)
    else:
        cache_dir = caches["npy"]
    raw, cached = _raw_pipeline(frames_cfg), _cached_pipeline(cache_dir, frames_cfg)
    for seed in range(4):
        torch.manual_seed(seed)
        expected = raw(_sample(videos, name))
        torch.manual_seed(seed)
        got = cached(_sample(videos, name))
        assert np.array_equal(got["frame_inds"], expected["frame_inds"])
        assert torch.equal(got["imgs"], expected["imgs"]) and got["imgs"].shape[-2:] == (36, 60)
        assert torch.equal(got["masks"], expected["masks"])
        assert np.array_equal(got["gt_segments"], expected["gt_segments"])
        assert np.array_equal(got["gt_labels"], expected["gt_labels"])
        assert got["total_frames"] == expected["total_frames"] and got["img_shape"] == expected["img_shape"]
        assert got["original_shape"] == (H, W) and got["clip_len"] == expected["clip_len"]


def test_short_video_window_is_padded_with_its_last_frame(videos, caches):
    torch.manual_seed(0)
    out = _cached_pipeline(caches["npy"], TRUNC)(_sample(videos, "short"))
    inds = out["frame_inds"]  # 50 frames -> 13 sampled; cropped to 12 or 13, padded to 16
    assert len(inds) == 16 and inds[-1] == inds[-2] and all(i % 4 == 0 for i in inds)
    valid = int(out["masks"].sum())
    last = out["imgs"][valid - 1 : valid]
    assert valid in (12, 13) and torch.equal(out["imgs"][valid:], last.expand(16 - valid, -1, -1, -1))


def test_jpeg_cache_is_within_the_stated_loss(videos, caches):
    raw, cached = _raw_pipeline(TRUNC), _cached_pipeline(caches["jpeg"], TRUNC)
    torch.manual_seed(5)
    expected = raw(_sample(videos, "long"))
    torch.manual_seed(5)
    got = cached(_sample(videos, "long"))
    assert np.array_equal(got["frame_inds"], expected["frame_inds"])
    assert np.array_equal(got["gt_segments"], expected["gt_segments"])
    diff = got["imgs"].float() - expected["imgs"].float()
    psnr = 10 * np.log10(255.0**2 / float((diff**2).mean()))
    assert float(diff.abs().mean()) < 3.0 and psnr > 35.0  # docs/data_pipeline.md: JPEG quality 95 loss


def test_manifest_records_source_geometry_and_files(videos, caches):
    manifest = load_manifest(caches["npy"], "long")
    assert manifest["total_frames"] == 150 and manifest["num_frames"] == 38  # ceil(150 / 4)
    assert (manifest["height"], manifest["width"]) == (36, 60)
    assert (manifest["source_height"], manifest["source_width"]) == (H, W)
    assert manifest["stride"] == 4 and manifest["short_side"] == 36 and manifest["format"] == "npy"
    assert manifest["source"]["size"] == os.path.getsize(os.path.join(videos, "long.mp4"))
    assert manifest["files"] == {"long.npy": os.path.getsize(os.path.join(caches["npy"], "long.npy"))}
    assert np.load(os.path.join(caches["npy"], "long.npy"), mmap_mode="r").shape == (38, 3, 36, 60)


@pytest.fixture
def private_cache(videos, tmp_path):
    """A cache of its own (the tests below damage it) and a copy of the videos."""
    import shutil

    video_dir = tmp_path / "videos"
    shutil.copytree(videos, video_dir)
    cache_dir = str(tmp_path / "cache")
    build_cache(_pairs(str(video_dir)), cache_dir, CacheSpec(stride=4, short_side=36), workers=1)
    return str(video_dir), cache_dir


def _load(video_dir, cache_dir, name="long", snippet_stride=4, **kwargs):
    transform = LoadCachedFrames(cache_dir=cache_dir, short_side=kwargs.pop("short_side", 36), **TRUNC, **kwargs)
    return transform(_sample(video_dir, name, snippet_stride))


def test_missing_shard_is_reported_with_the_video_name(private_cache):
    video_dir, cache_dir = private_cache
    os.remove(os.path.join(cache_dir, "long.npy"))
    with pytest.raises(CacheError, match="'long'.*missing"):
        _load(video_dir, cache_dir)
    _load(video_dir, cache_dir, name="short")  # the other entry still reads


def test_truncated_shard_and_missing_manifest_are_incomplete(private_cache):
    video_dir, cache_dir = private_cache
    with open(os.path.join(cache_dir, "long.npy"), "r+b") as f:
        f.truncate(1000)
    with pytest.raises(CacheError, match="Incomplete.*'long'"):
        _load(video_dir, cache_dir)
    os.remove(os.path.join(cache_dir, "short.json"))
    with pytest.raises(CacheError, match="'short'.*interrupted"):
        _load(video_dir, cache_dir, name="short")


def test_changed_source_video_is_stale(private_cache):
    video_dir, cache_dir = private_cache
    path = os.path.join(video_dir, "long.mp4")
    with open(path, "ab") as f:
        f.write(b"\0" * 16)
    with pytest.raises(CacheError, match="Stale.*'long'.*changed"):
        _load(video_dir, cache_dir)
    _load(video_dir, cache_dir, check_source=False)  # training from the cache alone is allowed
    os.remove(path)
    with pytest.raises(FileNotFoundError, match="'long'"):
        _load(video_dir, cache_dir)


def test_wrong_stride_resolution_or_version_is_reported(private_cache):
    video_dir, cache_dir = private_cache
    with pytest.raises(CacheError, match="Wrong stride.*'long'.*every 4.*every 8"):
        _load(video_dir, cache_dir, snippet_stride=8)
    with pytest.raises(CacheError, match="Wrong stride.*'long'"):
        _load(video_dir, cache_dir, scale_factor=2)  # 4 // 2: every 2nd frame
    with pytest.raises(CacheError, match="Wrong resolution.*'long'"):
        _load(video_dir, cache_dir, short_side=182)
    path = os.path.join(cache_dir, "long.json")
    manifest = json.load(open(path))
    manifest["format_version"] = manifest_module.FORMAT_VERSION + 1
    json.dump(manifest, open(path, "w"))
    with pytest.raises(CacheError, match="Stale.*'long'.*version"):
        _load(video_dir, cache_dir)


def test_check_cache_and_rebuild_of_stale_entries_only(private_cache):
    video_dir, cache_dir = private_cache
    pairs = _pairs(video_dir)
    spec = CacheSpec(stride=4, short_side=36)
    assert check_cache(pairs, cache_dir, stride=4, short_side=36) == []
    report = build_cache(pairs, cache_dir, spec, workers=1)
    assert report.built == [] and sorted(report.skipped) == ["long", "short"]
    os.utime(os.path.join(video_dir, "short.mp4"), ns=(1, 1))
    problems = check_cache(pairs, cache_dir, stride=4, short_side=36)
    assert len(problems) == 1 and "'short'" in problems[0]
    report = build_cache(pairs, cache_dir, spec, workers=1)
    assert report.built == ["short"] and report.skipped == ["long"]
    assert check_cache(pairs, cache_dir, stride=4, short_side=36) == []


def test_interrupted_build_leaves_an_entry_readers_reject(private_cache, monkeypatch):
    video_dir, cache_dir = private_cache
    from opentad.datasets.frame_cache import shards

    def broken_write(self, frames):
        raise KeyboardInterrupt

    monkeypatch.setattr(shards.NpyWriter, "write", broken_write)
    with pytest.raises(KeyboardInterrupt):
        cache_video(os.path.join(video_dir, "long.mp4"), "long", cache_dir, CacheSpec(stride=4, short_side=36))
    with pytest.raises(CacheError, match="'long'.*missing"):
        _load(video_dir, cache_dir)


def test_resize_method_is_rejected():
    with pytest.raises(ValueError, match="resize"):
        LoadCachedFrames(cache_dir="x", method="resize")


def test_tool_builds_checks_and_reports(videos, tmp_path, capsys):
    tool = runpy.run_path(os.path.join(ROOT, "tools", "prepare_data", "cache_frames.py"))
    out_dir = str(tmp_path / "c")
    args = ["--videos", videos, "--out", out_dir, "--stride", "4", "--short-side", "36", "--workers", "1"]
    assert tool["main"](args + ["--format", "jpeg", "--quality", "90"]) == 0
    assert "2 built" in capsys.readouterr().out
    assert load_manifest(out_dir, "short")["jpeg_quality"] == 90
    assert tool["main"](args + ["--check"]) == 0
    os.remove(os.path.join(out_dir, "long.jpg.bin"))
    assert tool["main"](args + ["--check"]) == 1
    out = capsys.readouterr().out
    assert "1 of 2 entries fresh" in out and "'long'" in out


def test_tool_config_mode_caches_the_training_videos_of_the_config(videos, tmp_path, capsys):
    """With a config, the videos are the dataset's (here 'short' has no ground truth, so it is not used)."""
    ann = {"database": {
        "long": {"subset": "validation", "duration": 5.0, "frame": 150,
                 "annotations": [{"label": "Jump", "segment": [1.0, 2.5]}]},
        "short": {"subset": "validation", "duration": 50 / 30, "frame": 50, "annotations": []},
    }}
    (tmp_path / "anno.json").write_text(json.dumps(ann))
    (tmp_path / "classes.txt").write_text("Jump\n")
    cache_dir = tmp_path / "cache"
    (tmp_path / "cfg.py").write_text(f"""
dataset = dict(train=dict(
    type="ThumosPaddingDataset", ann_file={str(tmp_path / 'anno.json')!r}, subset_name="validation",
    class_map={str(tmp_path / 'classes.txt')!r}, data_path={videos!r}, feature_stride=2, sample_stride=2,
    pipeline=[dict(type="LoadCachedFrames", cache_dir={str(cache_dir)!r}, short_side=36, method="random_trunc",
                   trunc_len=16, trunc_thresh=0.5)]))
""")
    tool = runpy.run_path(os.path.join(ROOT, "tools", "prepare_data", "cache_frames.py"))
    assert tool["main"]([str(tmp_path / "cfg.py"), "--workers", "1"]) == 0
    assert "1 videos, 1 built" in capsys.readouterr().out
    manifest = load_manifest(str(cache_dir), "long")
    assert manifest["stride"] == 4 and manifest["short_side"] == 36  # snippet stride 2 x 2, scale factor 1
    assert not os.path.exists(cache_dir / "short.json")
    assert tool["main"]([str(tmp_path / "cfg.py"), "--check"]) == 0
