"""benchmarks.detectors (through tools/benchmark_detectors.py's options): a tiny ActionFormer on the CPU in a
spawned process, the table's ratios, the reference rule, skipped detectors and the in_channels override."""
import argparse

import pytest

from benchmarks import detectors

# ActionFormer shrunk to 32 channels, global attention and a 64-snippet pyramid: a CPU smoke run of seconds.
TINY = ["projection.max_seq_len=64", "projection.attn_cfg.n_mha_win_size=-1", "projection.out_channels=32",
        "neck.in_channels=32", "neck.out_channels=32", "rpn_head.in_channels=32", "rpn_head.feat_channels=32"]


def _args(**kw):
    base = dict(device="cpu", detectors=None, batch=2, length=64, steps=1, threads=1, model_options=None)
    base.update(kw)
    return argparse.Namespace(**base)


def test_tiny_actionformer_cpu(capsys, load_tool):
    tool = load_tool("benchmark_detectors")
    rows = tool["main"](["--device", "cpu", "--detectors", "actionformer", "--length", "64", "--steps", "2",
                         "--threads", "1", "--model-options", *TINY])
    assert [r["detector"] for r in rows] == ["actionformer"]
    row = rows[0]
    assert row["config"] == "configs/actionformer/thumos_i3d.py" and row["in_channels_was"] == 2048
    assert row["step_s"] > 0 and row["peak_gib"] > 0
    assert row["trainable_m"] == row["params_m"]  # everything of ActionFormer trains
    # 2048 -> 32 input convolution (kernel 3, no bias: LN follows) dominates: 2048 * 32 * 3 weights
    assert 2048 * 32 * 3 / 1e6 < row["params_m"] < 1.0
    out = capsys.readouterr().out
    assert "| actionformer | `configs/actionformer/thumos_i3d.py` | " in out and "| 1.00x | 1.00x |" in out
    assert "whole sequences: batch 2 x 64 snippets" in out and "median of 2 iteration(s)" in out
    assert row["input"] == "2 x 64"


def test_selection_puts_the_reference_first_once():
    assert detectors.select("tridet,actionformer,tridet") == ["actionformer", "tridet"]
    assert detectors.select("TemporalMaxer") == ["actionformer", "temporalmaxer"]
    assert detectors.select(None) == list(detectors.DETECTORS)  # each group's reference leads it
    assert detectors.select("etad") == ["bmn", "etad"]  # a windowed detector alone: its group's reference only
    assert detectors.select("tridet,vsgn") == ["actionformer", "tridet", "bmn", "vsgn"]
    with pytest.raises(ValueError, match="nosuch"):
        detectors.select("nosuch")


def test_ratios_against_the_reference():
    ref = dict(detector="actionformer", config="a.py", in_channels_was=2048, params_m=29.3, step_s=0.5, peak_gib=2.0,
               input="2 x 2304")
    other = dict(detector="x", config="x.py", in_channels_was=1408, params_m=10.0, step_s=1.0, peak_gib=1.0,
                 input="16 x 128")
    assert detectors._row(other, ref) == (
        "| x | `x.py` (in_channels 1408 -> 2048) | 16 x 128 | 10.0 | 1000 | 1.00 | 2.00x | 0.50x |"
    )
    assert detectors._row(ref, ref).endswith("| 29.3 | 500 | 2.00 | 1.00x | 1.00x |")


def test_window_batch_follows_the_config():
    """A windowed detector's batch: the config's batch size and window, every action inside its window."""
    import torch
    from mmengine.config import ConfigDict

    cfg = ConfigDict(solver=dict(train=dict(batch_size=3)), dataset=dict(train=dict(window_size=40)))
    torch.manual_seed(0)
    batch = detectors.window_batch(cfg, torch.device("cpu"))
    assert batch["inputs"].shape == (3, 2048, 40) and batch["masks"].all() and len(batch["gt_segments"]) == 3
    for gt, labels in zip(batch["gt_segments"], batch["gt_labels"]):
        assert 1 <= len(gt) <= 4 and len(labels) == len(gt)
        assert (gt[:, 0] >= 0).all() and (gt[:, 1] <= 39).all() and (gt[:, 1] > gt[:, 0]).all()


def test_missing_and_broken_configs_are_skipped_with_a_line(tmp_path, monkeypatch, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("model = dict(type='NoSuchDetector', projection=dict(in_channels=1408))\n")
    monkeypatch.setattr(detectors, "DETECTORS", {"actionformer": "configs/actionformer/thumos_i3d.py",
                                                 "missing": "configs/missing/thumos_i3d.py", "broken": str(broken)})
    measured = []
    monkeypatch.setattr(detectors, "_measure_in_child", lambda name, config, args: (
        measured.append(name) or detectors.measure(name, config, args) if name != "actionformer" else
        dict(detector=name, config=config, in_channels_was=2048, params_m=1.0, step_s=1.0, peak_gib=1.0,
             input="2 x 64")))
    rows = detectors.run(_args(detectors="broken,missing"))
    out = capsys.readouterr().out
    assert [r["detector"] for r in rows] == ["actionformer"] and measured == ["broken"]
    assert "skipped missing: configs/missing/thumos_i3d.py is not in the tree yet" in out
    assert "skipped broken: " in out and "NoSuchDetector" in out


def test_the_reference_must_be_measured(monkeypatch):
    def fail(name, config, args):
        raise RuntimeError("boom")

    monkeypatch.setattr(detectors, "_measure_in_child", fail)
    with pytest.raises(RuntimeError, match="reference actionformer"):
        detectors.run(_args(detectors="actionformer"))


def test_in_channels_set_to_the_benchmark_features(tmp_path):
    cfg = tmp_path / "c.py"
    cfg.write_text("model = dict(type='ActionFormer', projection=dict(in_channels=1408, arch=(2, 2, 5)))\n")
    model, _ = detectors._model_config(str(cfg), {"projection.arch": (3, 0, 5)})
    assert model["projection"] == dict(in_channels=2048, arch=(3, 0, 5)) and model["_in_channels_was"] == 1408
    cfg.write_text("model = dict(type='AFSD', neck=dict(in_channels=1024, frame_num=256))\n")  # no projection
    model, _ = detectors._model_config(str(cfg))
    assert model["neck"] == dict(in_channels=2048, frame_num=256) and model["_in_channels_was"] == 1024
