"""tools/extract_features.py: one [frames // stride, C] float32 file per video, list files, errors."""
import importlib.util
import json
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "adatad", "synthetic", "e2e_synthetic_vit_tiny_qlora.py")


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two synthetic videos of 2-3 s and their frame counts (from the annotation file)."""
    from opentad.datasets.synthetic import generate_dataset, settings_from_preset

    root = tmp_path_factory.mktemp("extract_tool") / "synthetic"
    settings = settings_from_preset("default", dict(
        num_train=0, num_test=2, num_classes=2, min_duration=2.0, max_duration=3.0, min_action=0.5, max_action=1.0,
        median_action=0.7))
    generate_dataset(settings, str(root))
    with open(root / "annotations" / "thumos_14_anno.json", encoding="utf8") as handle:
        frames = {name: info["frame"] for name, info in json.load(handle)["database"].items()}
    return root / "raw_data" / "video", frames


def test_qlora_backbone_features_for_a_folder_and_a_list(videos, tmp_path, capsys):
    folder, frames = videos
    tool = load_tool("extract_features")
    assert tool.main([CONFIG, "none", "--videos", str(folder), "--out", str(tmp_path / "s4"), "--device", "cpu"]) == 0
    assert "wrote 2 feature file(s)" in capsys.readouterr().out
    for name, count in frames.items():
        feats = np.load(tmp_path / "s4" / f"{name}.npy")
        assert feats.dtype == np.float32 and feats.shape == (count // 4, 64) and np.isfinite(feats).all()
    listing = tmp_path / "list.txt"
    listing.write_text(f"# one video\n{folder / 'video_test_0000002.mp4'}\n\n")
    assert tool.main([CONFIG, "none", "--videos", str(listing), "--out", str(tmp_path / "s8"),
                      "--snippet-stride", "8", "--batch-size", "5"]) == 0
    assert os.listdir(tmp_path / "s8") == ["video_test_0000002.npy"]
    assert np.load(tmp_path / "s8" / "video_test_0000002.npy").shape == (frames["video_test_0000002"] // 8, 64)


def test_errors_are_one_line(videos, tmp_path, capsys):
    tool = load_tool("extract_features")
    assert tool.main([CONFIG, "none", "--videos", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --videos") and "nowhere" in err and "Traceback" not in err
    argv = [CONFIG, "none", "--videos", str(videos[0]), "--out", str(tmp_path / "o"), "--clip-len", "12"]
    assert tool.main(argv) == 1
    assert "--clip-len 12" in capsys.readouterr().err


def test_videos_takes_one_video_file_and_names_a_binary_file(videos, tmp_path, capsys):
    """--videos VIDEO is the one video; a file that is neither a video nor text is one line, no UTF-8 trace."""
    folder, frames = videos
    tool = load_tool("extract_features")
    video = folder / "video_test_0000001.mp4"
    assert tool.main([CONFIG, "none", "--videos", str(video), "--out", str(tmp_path / "one"), "--device", "cpu"]) == 0
    assert os.listdir(tmp_path / "one") == ["video_test_0000001.npy"]
    assert np.load(tmp_path / "one" / "video_test_0000001.npy").shape == (frames["video_test_0000001"] // 4, 64)
    capsys.readouterr()
    binary = tmp_path / "clip.bin"
    binary.write_bytes(video.read_bytes())
    assert tool.main([CONFIG, "none", "--videos", str(binary), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --videos {binary}: not a text file")
    assert "utf-8" not in err.lower() and "one video path per line" in err
