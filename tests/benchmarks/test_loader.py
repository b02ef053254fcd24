"""benchmarks.loader: its loaders are the recipe's pipelines, and a tiny CPU run (through
tools/benchmark_loader.py's options) fills every table."""
import os

import pytest
import torch

from benchmarks.loader import pipelines
from opentad.transforms import Compose
from opentad.utils.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHED = os.path.join(ROOT, "configs", "adatad", "thumos", "e2e_thumos_videomae_s_768x1_160_adapter_cached.py")
RAW = os.path.join(ROOT, "configs", "adatad", "thumos", "e2e_thumos_videomae_s_768x1_160_adapter.py")

# the cached recipe shrunk for a CPU: 64-frame windows cached at short side 72, 64 px crops, a 1-block ViT
TINY = f'''
_base_ = [{CACHED!r}]
window_size = 64
chunk_num = 4
dataset = dict(train=dict(pipeline=[
    dict(type="LoadCachedFrames", cache_dir="set-by-the-benchmark", short_side=72, num_clips=1, method="random_trunc",
         trunc_len=window_size, trunc_thresh=0.75, crop_ratio=[0.9, 1.0]),
    dict(type="mmaction.FormatShape", input_format="NCTHW"),
    dict(type="ConvertToTensor", keys=["imgs", "gt_segments", "gt_labels"]),
    dict(type="Collect", inputs="imgs", keys=["masks", "gt_segments", "gt_labels"]),
]))
model = dict(
    backbone=dict(
        backbone=dict(img_size=64, embed_dims=32, depth=1, num_heads=2, total_frames=window_size, adapter_index=[0],
                      with_cp=False),
        data_preprocessor=dict(augment=[
            dict(type="mmaction.RandomResizedCrop"),
            dict(type="mmaction.Resize", scale=(64, 64), keep_ratio=False),
            dict(type="mmaction.Flip", flip_ratio=0.5),
            dict(type="mmaction.ImgAug", transforms="default"),
            dict(type="mmaction.ColorJitter"),
        ]),
        custom=dict(
            pre_processing_pipeline=[
                dict(type="Rearrange", keys=["frames"], ops="b n c (t1 t) h w -> (b t1) n c t h w", t1=chunk_num)],
            post_processing_pipeline=[
                dict(type="Reduce", keys=["feats"], ops="b n c t h w -> b c t", reduction="mean"),
                dict(type="Rearrange", keys=["feats"], ops="(b t1) c t -> b c (t1 t)", t1=chunk_num),
                dict(type="Interpolate", keys=["feats"], size=window_size),
            ],
        ),
    ),
    projection=dict(in_channels=32, out_channels=32, max_seq_len=window_size, attn_cfg=dict(n_head=2)),
    neck=dict(in_channels=32, out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
)
'''


def test_raw_loader_is_the_upstream_recipe_pipeline():
    """The 'raw' variant derived from the cached config is the raw recipe's training pipeline."""
    derived = pipelines(load_config(CACHED), "unused", 4)
    recipe = load_config(RAW).dataset.train.pipeline
    torch.manual_seed(0)  # ColorJitter draws its order of operations when built
    ours = repr(Compose(derived["raw"]))
    torch.manual_seed(0)
    assert ours == repr(Compose(recipe))
    augment = load_config(CACHED).model.backbone.data_preprocessor.augment
    assert [s["type"] for s in derived["cached-cpu"]][1:6] == [s["type"] for s in augment]
    assert [s["type"] for s in derived["cached-gpu"]] == ["LoadCachedFrames", "mmaction.FormatShape",
                                                         "ConvertToTensor", "Collect"]


@pytest.mark.slow
def test_tiny_cpu_run_fills_every_table(load_tool, tmp_path, capsys):
    config = tmp_path / "tiny_cached.py"
    config.write_text(TINY)
    args = ["--make-videos", str(tmp_path / "data"), "--num-videos", "2", "--seconds", "12", "--size", "128x72",
            "--config", str(config), "--workers", "0", "--batches", "3", "--slow-batches", "2", "--warmup", "1",
            "--device", "cpu", "--train", "--train-steps", "2", "--train-raw-steps", "2"]
    result = load_tool("benchmark_loader")["main"](args)
    assert [r["format"] for r in result["caches"]] == ["npy", "jpeg"]
    npy = result["caches"][0]
    assert npy["frames"] > 0 and abs(npy["kib_per_frame"] - 72 * 128 * 3 / 1024) < 0.1  # raw uint8 frames
    variants = [(r["variant"], r["format"]) for r in result["loaders"]]
    assert variants == [("raw", "-"), ("cached-cpu", "npy"), ("cached-read", "npy"), ("cached-gpu", "npy"),
                        ("cached-cpu", "jpeg"), ("cached-read", "jpeg"), ("cached-gpu", "jpeg")]
    assert all(r["fps"] > 0 and r["frames_per_batch"] == 2 * 64 for r in result["loaders"])
    assert [r["loader"] for r in result["training"]] == ["cached-gpu (npy)", "raw"]
    assert all(0 <= r["share"] <= 1 and r["step_ms"] > 0 for r in result["training"])
    out = capsys.readouterr().out
    assert "| loader | cache | batches | frames/s (steady)" in out and "| training fed by |" in out
