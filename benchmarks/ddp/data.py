"""Data and configs of ``tools/benchmark_ddp.py``: synthetic frame caches and the recipes reading them.

The data needs no PyAV: synthetic videos are rendered straight into frame
caches (:mod:`opentad.datasets.synthetic.frame_cache`). The configs inherit
the recipes unchanged except for the training input, which reads the cache
(``LoadCachedFrames(check_source=False)``), and what a short DDP run needs:
random weights, no evaluation, a checkpoint every epoch, ``static_graph``
and ``fp16_compress`` on. See ``docs/ddp.md``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from opentad.datasets.synthetic import generate_dataset, settings_from_preset
from opentad.datasets.synthetic.frame_cache import render_frame_cache, repeat_entries
from opentad.utils.config import load_config

__all__ = [
    "RECIPES",
    "CACHED_S_RECIPE",
    "BenchmarkData",
    "make_tiny_data",
    "make_vit_s_data",
    "cached_pipeline",
    "write_config",
    "loader_workers",
    "write_tiny_config",
    "write_vit_s_configs",
]

RECIPES = {
    "tiny_qlora": "configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora.py",
    "s_qlora": "configs/adatad/thumos/e2e_thumos_videomae_s_768x1_160_adapter_qlora.py",
    "s_adapter": "configs/adatad/thumos/e2e_thumos_videomae_s_768x1_160_adapter.py",
}
#: the ViT-S recipe whose training input (cache, GPU augmentation, loader) the ViT-S runs take
CACHED_S_RECIPE = "configs/adatad/thumos/e2e_thumos_videomae_s_768x1_160_adapter_cached.py"
DECODING_STEPS = ("PrepareVideoInfo", "mmaction.DecordInit", "VideoInit", "mmaction.DecordDecode", "VideoDecode")
S_SHORT_SIDE = 182


@dataclass
class BenchmarkData:
    """A rendered dataset: its folder, frame cache, annotation file, samples per epoch and classes."""

    root: str
    cache: str
    ann: str
    samples: int
    classes: int

    @property
    def class_map(self) -> str:
        return os.path.join(self.root, "annotations", "category_idx.txt")


def make_tiny_data(data_dir: str, *, videos: int, short: bool = False, workers: int = 1) -> BenchmarkData:
    """The default preset (96x96, 5 classes), ``videos`` training videos cached at full size, every 4th frame.

    Args:
        data_dir: parent folder (the data goes to ``data_dir/tiny``; reused when fresh).
        videos: training videos.
        short: 4-8 s videos (a smoke run) instead of the preset's 10-30 s.
        workers: rendering processes.
    """
    overrides: Dict[str, Any] = dict(num_train=videos, num_test=0, empty_fraction=0.0, write_videos=False)
    if short:
        overrides.update(min_duration=4.0, max_duration=8.0, min_action=0.5, max_action=2.0, median_action=1.0)
    settings = settings_from_preset("default", overrides)
    root = os.path.join(data_dir, "tiny")
    generate_dataset(settings, root, workers=1)
    cache = os.path.join(root, "frame_cache", "stride4_full")
    render_frame_cache(settings, cache, stride=4, short_side=None, subsets=("validation",), workers=workers)
    ann = os.path.join(root, "annotations", "thumos_14_anno.json")
    return BenchmarkData(root, cache, ann, settings.num_train, settings.num_classes)


def make_vit_s_data(
    data_dir: str, *, videos: int, repeat: int, seconds: Tuple[float, float], workers: int = 1
) -> BenchmarkData:
    """The ``thumos`` preset (320x180, 20 classes), cached at short side 182, each video listed ``repeat`` times.

    Args:
        data_dir: parent folder (the data goes to ``data_dir/thumos``; reused when fresh).
        videos: distinct training videos.
        repeat: times each is listed (an epoch has ``videos * repeat`` samples).
        seconds: ``(min, max)`` video length.
        workers: rendering processes.
    """
    low, high = seconds
    settings = settings_from_preset("thumos", dict(
        num_train=videos, num_test=0, empty_fraction=0.0, write_videos=False, min_duration=low,
        max_duration=high, median_duration=math.sqrt(low * high),
    ))
    root = os.path.join(data_dir, "thumos")
    generate_dataset(settings, root, workers=1)
    cache = os.path.join(root, "frame_cache", f"stride4_short{S_SHORT_SIDE}")
    render_frame_cache(settings, cache, stride=4, short_side=S_SHORT_SIDE, subsets=("validation",), workers=workers)
    ann = repeat_entries(root, cache, repeat=repeat)
    return BenchmarkData(root, cache, ann, videos * repeat, settings.num_classes)


def cached_pipeline(pipeline: Sequence[Dict[str, Any]], cache: str, short_side: Optional[int]) -> List[Dict]:
    """``pipeline`` with its decoding steps dropped and ``LoadFrames`` (or ``LoadCachedFrames``) reading ``cache``."""
    out = []
    for step in pipeline:
        if step["type"] in DECODING_STEPS:
            continue
        if step["type"] in ("LoadFrames", "LoadCachedFrames"):
            kwargs = {k: v for k, v in step.items() if k not in ("type", "cache_dir", "short_side")}
            step = dict(type="LoadCachedFrames", cache_dir=cache, short_side=short_side, check_source=False, **kwargs)
        out.append(dict(step))
    return out


def write_config(path: str, base: str, note: str, sections: Dict[str, Any]) -> str:
    """Write a config inheriting ``base`` (a path) with ``sections`` merged over it (dicts merge, lists replace)."""
    lines = [f"# Written by tools/benchmark_ddp.py: {note}", f"_base_ = [{base!r}]", ""]
    lines += [f"{key} = {value!r}" for key, value in sections.items()]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def loader_workers(wanted: int, sample_bytes: int) -> Tuple[int, str]:
    """Loader workers per process that ``/dev/shm`` can serve, and a note saying so.

    Two processes load at once (two DDP ranks, or two one-GPU runs), each
    worker with up to 2 batches of 2 samples in flight (``sample_bytes`` each).
    """
    if not os.path.isdir("/dev/shm"):
        return wanted, "no /dev/shm to check"
    st = os.statvfs("/dev/shm")
    free, per_worker = st.f_bavail * st.f_frsize, 2 * 2 * 2 * sample_bytes
    fitting = max(0, min(wanted, int(0.8 * free // per_worker)))
    return fitting, f"/dev/shm {free / 2**30:.1f} GiB free: {fitting} loader workers per process (recipe: {wanted})"


def _common(data: BenchmarkData, epochs: int) -> Dict[str, Any]:
    return dict(
        solver=dict(static_graph=True, fp16_compress=True),
        workflow=dict(logging_interval=10, checkpoint_interval=1, val_loss_interval=-1, val_eval_interval=-1,
                      end_epoch=epochs),
        dataset=dict(train=dict(ann_file=data.ann, class_map=data.class_map, subset_name="validation",
                                data_path=os.path.join(data.root, "raw_data", "video"))),
    )


def write_tiny_config(folder: str, data: BenchmarkData, *, repo: str, epochs: int) -> str:
    """``folder/tiny_qlora.py``: the tiny QLoRA recipe reading ``data``'s cache, global batch 2."""
    recipe = os.path.join(repo, RECIPES["tiny_qlora"])
    sections = _common(data, epochs)
    sections["dataset"]["train"]["pipeline"] = cached_pipeline(load_config(recipe).dataset.train.pipeline,
                                                               data.cache, None)
    sections["solver"]["train"] = dict(batch_size=2)  # the global batch: one sample per process on 2
    sections["model"] = dict(rpn_head=dict(num_classes=data.classes))
    return write_config(os.path.join(folder, "tiny_qlora.py"), recipe,
                        "training videos read from the rendered frame cache", sections)


def _cpu_augment_pipeline(recipe_pipeline: Sequence[Dict[str, Any]], cache: str) -> List[Dict]:
    """The recipe's own pipeline from the cache: the cache stands in for decoding and ``Resize(-1, 182)``."""
    pipeline = cached_pipeline(recipe_pipeline, cache, S_SHORT_SIDE)
    resize = [i for i, step in enumerate(pipeline) if step["type"] in ("Resize", "mmaction.Resize")]
    if not resize or tuple(pipeline[resize[0]]["scale"]) != (-1, S_SHORT_SIDE):
        raise ValueError(f"expected the recipe's first Resize to be scale=(-1, {S_SHORT_SIDE}); got {pipeline}")
    return pipeline[:resize[0]] + pipeline[resize[0] + 1:]


def write_vit_s_configs(
    folder: str,
    data: BenchmarkData,
    *,
    repo: str,
    epochs: int,
    workers: Optional[int] = None,
    augment: str = "gpu",
) -> Tuple[Dict[str, str], str]:
    """``folder/s_qlora.py`` and ``folder/s_adapter.py``: the recipes reading the cache.

    Args:
        folder: where the configs go.
        data: from :func:`make_vit_s_data`.
        repo: the repository root (its ``configs/``).
        epochs: ``workflow.end_epoch``.
        workers: loader workers per process; None: the cached recipe's, fewer if ``/dev/shm`` is small.
        augment: ``"gpu"``: the cached recipe's training input (batched augmentation on the GPU, in its
            data preprocessor); ``"cpu"``: the recipe's own augmentation in the loader workers.

    Returns:
        ``({label: path}, a note on the loader workers)``.

    Raises:
        ValueError: an unknown ``augment`` (names the valid ones).
    """
    if augment not in ("gpu", "cpu"):
        raise ValueError(f"augment must be 'gpu' or 'cpu', got {augment!r}")
    cached = load_config(os.path.join(repo, CACHED_S_RECIPE))
    train_solver = cached.solver.train.to_dict()
    if workers is None:
        window = cached.dataset.train.pipeline[0]["trunc_len"]
        workers, note = loader_workers(train_solver["num_workers"], window * 3 * S_SHORT_SIDE * 324)
    else:
        note = f"{workers} loader workers per process (set)"
    train_solver.update(num_workers=workers, persistent_workers=workers > 0)
    paths = {}
    for label in ("s_qlora", "s_adapter"):
        recipe = os.path.join(repo, RECIPES[label])
        sections = _common(data, epochs)
        sections["solver"]["train"] = train_solver
        sections["model"] = dict(backbone=dict(custom=dict(pretrain=None)), rpn_head=dict(num_classes=data.classes))
        if augment == "gpu":
            pipeline = cached_pipeline(cached.dataset.train.pipeline, data.cache, S_SHORT_SIDE)
            sections["model"]["backbone"]["data_preprocessor"] = cached.model.backbone.data_preprocessor.to_dict()
            note_cfg = f"training input and GPU augmentation of {os.path.basename(CACHED_S_RECIPE)}"
        else:
            pipeline = _cpu_augment_pipeline(load_config(recipe).dataset.train.pipeline, data.cache)
            note_cfg = "training frames from the frame cache, the recipe's CPU augmentation"
        sections["dataset"]["train"]["pipeline"] = pipeline
        paths[label] = write_config(os.path.join(folder, f"{label}.py"), recipe, note_cfg + ", random weights",
                                    sections)
    return paths, note
