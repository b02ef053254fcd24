"""End to end: generate a tiny dataset on disk and check it like a user would."""
import hashlib
import importlib.util
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest

from opentad.datasets.synthetic import CLASS_NAMES, MANIFEST_FILE, SyntheticSettings, generate_dataset

ROOT = Path(__file__).resolve().parents[3]

# Short videos with many short actions so every class shows up a few times;
# no distractors or overlaps so that a foreground mask isolates one action.
E2E = dict(
    num_train=5, num_test=4, min_duration=8.0, max_duration=9.0, actions_per_minute=40.0, median_action=1.0,
    action_sigma=0.4, max_action=2.5, max_fill=0.8, max_distractors=0, overlap_prob=0.0, ambiguous_prob=0.6,
    empty_fraction=0.25,
)  # fmt: skip
TINY = dict(
    num_train=2, num_test=1, min_duration=2.5, max_duration=4.0, actions_per_minute=30.0, median_action=1.0,
    max_action=2.0, empty_fraction=0.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "synthetic-thumos"
    generate_dataset(SyntheticSettings(**E2E), str(out), workers=2)
    database = json.loads((out / "annotations/thumos_14_anno.json").read_text())["database"]
    return out, database


def _decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context
        info = (codec.name, codec.pix_fmt, stream.average_rate, stream.width, stream.height)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return info, frames


def _files(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(Path(out).rglob("*")) if p.is_file()}


def test_layout_and_schema(dataset):
    out, database = dataset
    assert (out / "annotations/category_idx.txt").read_text().splitlines() == list(CLASS_NAMES[:5])
    names = [f"video_validation_{i:07d}" for i in range(1, 6)] + [f"video_test_{i:07d}" for i in range(1, 5)]
    assert list(database) == names
    for name, video in database.items():
        assert video["subset"] == ("validation" if "validation" in name else "test")
        assert isinstance(video["frame"], int) and video["duration"] == pytest.approx(video["frame"] / 30)
        assert (out / f"raw_data/video/{name}.mp4").is_file()
        feats = np.load(out / f"features/stride4/{name}.npy")
        assert feats.dtype == np.float32 and feats.shape == (video["frame"] // 4, 64)
        for ann in video["annotations"]:
            start, end = ann["segment"]
            assert 0 <= start < end <= video["duration"] + 1e-9
            assert ann["label"] in CLASS_NAMES[:5] or ann["label"] == "Ambiguous"
            if ann["label"] != "Ambiguous":
                assert 0.5 - 1e-6 <= end - start <= 10 + 1e-6
    assert sum(not v["annotations"] for v in database.values()) >= 2  # one empty video per subset
    assert any(a["label"] == "Ambiguous" for v in database.values() for a in v["annotations"])
    assert not list(out.rglob("*.partial-*"))


def test_videos_decode_to_the_annotated_frame_count(dataset):
    out, database = dataset
    for name in ("video_validation_0000001", "video_test_0000004"):
        (codec, pix_fmt, rate, width, height), frames = _decode(out / f"raw_data/video/{name}.mp4")
        assert (codec, pix_fmt, rate, width, height) == ("h264", "yuv420p", 30, 96, 96)
        assert len(frames) == database[name]["frame"]


def test_classes_are_distinct_in_decoded_frames(dataset, motion):
    out, database = dataset
    descriptors, labels = [], []
    for name, video in database.items():
        if not video["annotations"]:
            continue
        _, frames = _decode(out / f"raw_data/video/{name}.mp4")
        frames = frames.astype(np.float32)
        background = np.median(frames[::5], axis=0)
        for ann in video["annotations"]:
            if ann["label"] == "Ambiguous":
                continue
            first, stop = (int(np.ceil(t * 30 - 1e-6)) for t in ann["segment"])
            mask = np.abs(frames[first:stop] - background).sum(-1) > 80
            descriptors.append(motion.descriptor(mask))
            labels.append(CLASS_NAMES.index(ann["label"]))
    labels = np.array(labels)
    assert all((labels == k).sum() >= 2 for k in range(5)), np.bincount(labels)
    assert motion.loo_accuracy(np.array(descriptors), labels) >= 0.8  # chance 0.2


def _action_snippets(out, video):
    """Feature rows of one video lying entirely inside exactly one action, with its class."""
    feats = np.load(out / f"features/stride4/{video}.npy")
    owner = np.full(len(feats), -1)
    for ann in json.loads((out / "annotations/thumos_14_anno.json").read_text())["database"][video]["annotations"]:
        if ann["label"] == "Ambiguous":
            continue
        lo, hi = ann["segment"][0] * 30 / 4, ann["segment"][1] * 30 / 4
        inside = [t for t in range(len(feats)) if t >= lo and t + 1 <= hi]
        owner[inside] = np.where(owner[inside] == -1, CLASS_NAMES.index(ann["label"]), -2)
    return feats[owner >= 0], owner[owner >= 0]


def test_features_carry_the_class(dataset):
    """Nearest class centroid, each video classified with centroids from the other videos."""
    out, database = dataset
    per_video = {name: _action_snippets(out, name) for name in database}
    correct = total = 0
    for name, (x, y) in per_video.items():
        if not len(y):
            continue
        others = [per_video[n] for n in database if n != name]
        ox, oy = np.concatenate([o[0] for o in others]), np.concatenate([o[1] for o in others])
        centroids = np.stack([ox[oy == k].mean(0) for k in range(5)])
        predicted = np.argmin(((x[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
        correct += (predicted == y).sum()
        total += len(y)
    assert total > 100 and correct / total > 0.7  # chance 0.2


def _decoded_planes(out):
    """Every video's decoder output, yuv420p planes [T, H * 3 / 2, W] (no colour conversion)."""
    planes = {}
    for path in sorted(Path(out, "raw_data/video").glob("*.mp4")):
        with av.open(str(path)) as container:
            planes[path.name] = np.stack([f.to_ndarray() for f in container.decode(video=0)])
    return planes


def _same_planes(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_dataset(SyntheticSettings(**TINY, max_distractors=2), str(a), workers=1)
    generate_dataset(SyntheticSettings(**TINY, max_distractors=2), str(b), workers=2)
    generate_dataset(SyntheticSettings(**TINY, max_distractors=2, seed=1), str(c), workers=1)
    files_a, files_b, files_c = _files(a), _files(b), _files(c)
    assert files_a == files_b  # worker count does not matter either
    ann = "annotations/thumos_14_anno.json"
    assert files_a[ann] != files_c[ann]
    feat = "features/stride4/video_validation_0000001.npy"
    assert not np.array_equal(np.load(a / feat), np.load(c / feat))
    planes_a, planes_c = _decoded_planes(a), _decoded_planes(c)
    assert not any(np.array_equal(planes_a[k][:10], planes_c[k][:10]) for k in planes_a)
    # once more in this process: same bytes again
    generate_dataset(SyntheticSettings(**TINY, max_distractors=2), str(tmp_path / "again"), workers=1)
    assert _files(tmp_path / "again") == files_a


def test_same_data_from_a_process_with_other_threads_and_instruction_sets(tmp_path, other_cpu):
    """Another process, pinned to one core, with other thread settings, NumPy without its SIMD
    extensions, OpenBLAS's SSE3 kernels and x264's C code: the decoded frames (the guarantee across
    machines) are identical, and so are all bytes (same FFmpeg build here)."""
    settings = dict(TINY, max_distractors=2)
    here, there = tmp_path / "here", tmp_path / "there"
    generate_dataset(SyntheticSettings(**settings), str(here), workers=1)
    other_cpu(
        "import opentad.datasets.synthetic.writer as writer\n"
        "from opentad.datasets.synthetic import SyntheticSettings, generate_dataset\n"
        "writer.X264_PARAMS['asm'] = '0'  # x264's C code\n"
        f"generate_dataset(SyntheticSettings(**{settings!r}), {str(there)!r}, workers=2)\n"
    )
    assert _same_planes(_decoded_planes(here), _decoded_planes(there))
    assert _files(here) == _files(there)


def test_rerun_is_skipped_and_repairs_missing_files(tmp_path):
    out = tmp_path / "d"
    settings = SyntheticSettings(**TINY)
    first = generate_dataset(settings, str(out))
    assert not first.skipped and first.num_written == 3
    before = {name: hashlib.sha256(data).hexdigest() for name, data in _files(out).items()}
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = generate_dataset(settings, str(out))
    assert again.skipped and again.num_written == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == mtimes

    os.remove(out / "raw_data/video/video_test_0000001.mp4")
    repaired = generate_dataset(settings, str(out))
    assert not repaired.skipped and repaired.num_written == 1
    assert {name: hashlib.sha256(data).hexdigest() for name, data in _files(out).items()} == before

    # an interrupted run (manifest not complete, a half-written file left): resume, keep finished files
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    (out / MANIFEST_FILE).write_text(json.dumps({**manifest, "complete": False, "files": {}}))
    (out / "raw_data/video/video_test_0000001.mp4.partial-999").write_bytes(b"half")
    resumed = generate_dataset(settings, str(out))
    assert not resumed.skipped and resumed.num_written == 0
    assert not list(out.rglob("*.partial-*")) and json.loads((out / MANIFEST_FILE).read_text())["complete"]

    # other settings: regenerate, and drop the files of videos that no longer exist
    fewer = generate_dataset(SyntheticSettings(**{**TINY, "num_train": 1}), str(out))
    assert fewer.num_written == 2 and not (out / "raw_data/video/video_validation_0000002.mp4").exists()
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["complete"] and manifest["settings"]["num_train"] == 1


def test_refuses_folder_with_foreign_data(tmp_path):
    out = tmp_path / "real"
    (out / "annotations").mkdir(parents=True)
    (out / "annotations/thumos_14_anno.json").write_text("{}")
    with pytest.raises(FileExistsError, match="manifest"):
        generate_dataset(SyntheticSettings(**TINY), str(out))
    assert (out / "annotations/thumos_14_anno.json").read_text() == "{}"


def test_cli_writes_features_only(tmp_path, capsys):
    script = ROOT / "tools/prepare_data/synthetic/generate.py"
    spec = importlib.util.spec_from_file_location("synthetic_generate_cli", script)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = tmp_path / "cli"
    args = ["--out", str(out), "--num-train", "2", "--num-test", "1", "--min-duration", "3", "--max-duration", "4"]
    cli.main(args + ["--num-classes", "3", "--feat-dim", "16", "--no-videos", "--size", "64x48"])
    assert "3 videos" in capsys.readouterr().out
    assert not (out / "raw_data").exists()
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    written = manifest["settings"]
    assert (written["width"], written["height"], written["feat_dim"]) == (64, 48, 16)
    assert np.load(out / "features/stride4/video_test_0000001.npy").shape[1] == 16
    for bad in (["--size", "64by48"], ["--size", "63x48"], ["--num-classes", "21"]):
        with pytest.raises(SystemExit):
            cli.main(args + bad)
    assert "even" in capsys.readouterr().err
