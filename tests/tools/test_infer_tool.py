"""tools/infer.py: JSON and timeline outputs, and one-line errors for bad input.

Runs in a folder holding freshly generated synthetic videos (the repository
config's relative data paths resolve there), with the synthetic AdaTAD config
for 2 classes and a random-weight checkpoint: this checks the tool's
plumbing; that detections are right is tests/apis/test_inference.py's job.
"""
import importlib.util
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "adatad", "synthetic", "e2e_synthetic_vit_tiny_adapter.py")
OPTIONS = ["--cfg-options", "model.rpn_head.num_classes=2"]
# the layout plot_timeline documents: 40 px title, 50 px time axis, row_height per class row
HEADER, FOOTER, ROW, WIDTH = 40, 50, 40, 1200


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with data/synthetic-thumos (2 test videos of 4-6 s, 2 classes) and a random AdaTAD checkpoint."""
    from opentad.datasets.synthetic import generate_dataset, settings_from_preset
    from opentad.registry import DETECTORS, build
    from opentad.utils.checkpoint import atomic_save, model_state_dict
    from opentad.utils.config import load_config

    root = tmp_path_factory.mktemp("infer_tool")
    settings = settings_from_preset("default", dict(num_train=0, num_test=2, num_classes=2, min_duration=4.0,
                                                    max_duration=6.0, max_action=2.0, median_action=1.0))
    generate_dataset(settings, str(root / "data" / "synthetic-thumos"))
    torch.manual_seed(0)
    model = build(load_config(CONFIG, {"model.rpn_head.num_classes": 2}).model, DETECTORS)
    atomic_save({"epoch": 0, "state_dict": model_state_dict(model)}, str(root / "model.pth"))
    return root


def video(root, i):
    return str(root / "data" / "synthetic-thumos" / "raw_data" / "video" / f"video_test_000000{i}.mp4")


def test_json_and_timeline(workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    ann = workspace / "data" / "synthetic-thumos" / "annotations" / "thumos_14_anno.json"
    out, png = workspace / "out" / "det.json", workspace / "out" / "timeline.png"
    rc = load_tool("infer").main([CONFIG, "model.pth", video(workspace, 1), "--out", str(out), "--plot", str(png),
                                  "--topk", "5", "--device", "cpu", "--gt-ann", str(ann)] + OPTIONS)
    assert rc == 0 and "wrote" in capsys.readouterr().out
    result = json.loads(out.read_text())
    detections, info = result["results"]["video_test_0000001"], result["videos"]["video_test_0000001"]
    scores = [d["score"] for d in detections]
    assert 0 < len(detections) <= 5 and scores == sorted(scores, reverse=True)
    assert info["fps"] == 30.0 and info["duration"] == pytest.approx(info["num_frames"] / 30)
    assert all(0 <= d["segment"][0] <= d["segment"][1] <= info["duration"] for d in detections)
    truth = json.loads(ann.read_text())["database"]["video_test_0000001"]["annotations"]
    rows = {d["label"] for d in detections} | {a["label"] for a in truth if a["label"] != "Ambiguous"}
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (WIDTH, HEADER + FOOTER + ROW * len(rows))
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 10  # something was drawn


def test_several_videos_print_json_and_number_their_plots(workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    rc = load_tool("infer").main([CONFIG, "model.pth", video(workspace, 1), video(workspace, 2), "--plot",
                                  str(workspace / "many" / "t.png"), "--score-thresh", "0.01"] + OPTIONS)
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result["results"]) == ["video_test_0000001", "video_test_0000002"]
    assert all(d["score"] >= 0.01 for dets in result["results"].values() for d in dets)
    assert sorted(os.listdir(workspace / "many")) == ["t_video_test_0000001.png", "t_video_test_0000002.png"]


@pytest.mark.parametrize("case", ["unreadable", "num_classes", "missing_checkpoint", "features_count"])
def test_bad_input_is_one_line_naming_the_culprit(workspace, monkeypatch, capsys, case):
    monkeypatch.chdir(workspace)
    (workspace / "broken.avi").write_bytes(os.urandom(3000))
    argv, expected = {
        "unreadable": ([CONFIG, "model.pth", "broken.avi"] + OPTIONS, "broken.avi"),
        "num_classes": ([CONFIG, "model.pth", video(workspace, 1), "--cfg-options", "model.rpn_head.num_classes=3"],
                        "trained for 2 classes"),
        "missing_checkpoint": ([CONFIG, "nope.pth", video(workspace, 1)] + OPTIONS, "nope.pth"),
        "features_count": ([CONFIG, "model.pth", video(workspace, 1), video(workspace, 2), "--features", "a.npy"]
                           + OPTIONS, "2 video(s) but 1 --features"),
    }[case]
    assert load_tool("infer").main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err and err.count("\n") == 1
