"""Fixtures of the opentad.apis tests: tiny synthetic data with videos, and a feature model trained on it.

The data: 12 training and 3 test videos of 6-10 s (2 classes, 16-channel
features, actions of 0.5-2 s); only the test videos are rendered to mp4.
The model: configs/actionformer/synthetic_features.py shrunk to 16 channels
(the tests/cores recipe), trained 10 epochs at lr 3e-3 in one process
(about 10 s on one CPU core).
"""
import dataclasses
import logging
import os
import textwrap
from types import SimpleNamespace

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FEATURE_CONFIG = os.path.join(ROOT, "configs", "actionformer", "synthetic_features.py")
E2E_CONFIG = os.path.join(ROOT, "configs", "adatad", "synthetic", "e2e_synthetic_vit_tiny_adapter.py")
QLORA_CONFIG = os.path.join(ROOT, "configs", "adatad", "synthetic", "e2e_synthetic_vit_tiny_qlora.py")

SETTINGS = dict(num_train=12, num_test=3, num_classes=2, min_duration=6.0, max_duration=10.0, feat_dim=16,
                min_action=0.5, max_action=2.0, median_action=1.0)


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Runs set deterministic algorithms and replace the opentad log handlers; undo both."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    handlers = list(logging.getLogger("opentad").handlers)
    yield
    torch.use_deterministic_algorithms(deterministic)
    opentad_logger = logging.getLogger("opentad")
    for handler in list(opentad_logger.handlers):
        if handler not in handlers:
            opentad_logger.removeHandler(handler)
            handler.close()


def _layout(root):
    data = os.path.join(str(root), "data", "synthetic-thumos")
    return SimpleNamespace(
        root=str(root), data=data,
        ann=os.path.join(data, "annotations", "thumos_14_anno.json"),
        class_map=os.path.join(data, "annotations", "category_idx.txt"),
        features=os.path.join(data, "features", "stride4"),
        videos=os.path.join(data, "raw_data", "video"),
    )


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Paths of the tiny dataset and the names of its test videos.

    Attributes: ``root``, ``data``, ``ann``, ``class_map``, ``features``, ``videos``, ``test_videos``.
    """
    from opentad.datasets.synthetic import generate_dataset, settings_from_preset, write_video_files
    from opentad.datasets.synthetic.plan import plan_dataset

    paths = _layout(tmp_path_factory.mktemp("apis_synthetic"))
    settings = settings_from_preset("default", dict(SETTINGS, write_videos=False))
    generate_dataset(settings, paths.data)
    with_videos = dataclasses.replace(settings, write_videos=True)
    tests = [p for p in plan_dataset(settings) if p.name.startswith("video_test")]
    for plan in tests:
        write_video_files(paths.data, with_videos, plan)
    paths.test_videos = [p.name for p in tests]
    return paths


def data_lines(paths, data_path: str) -> str:
    """Config lines: ``_paths`` (a split's files, absolute) and the evaluation's ground truth."""
    return textwrap.dedent(f"""
        _paths = dict(ann_file={paths.ann!r}, class_map={paths.class_map!r}, data_path={data_path!r})
        evaluation = dict(ground_truth_filename={paths.ann!r})
    """)


TINY_FEATURE_MODEL = """
_base_ = [{base!r}]
{data}
model = dict(
    projection=dict(in_channels=16, out_channels=16, attn_cfg=dict(n_head=2, n_mha_win_size=3), max_seq_len=64),
    neck=dict(in_channels=16, out_channels=16),
    rpn_head=dict(num_classes=2, in_channels=16, feat_channels=16),
)
_pipe = [
    dict(type="LoadFeats", feat_format="npy"),
    dict(type="ConvertToTensor", keys=["feats", "gt_segments", "gt_labels"]),
    dict(type="RandomTrunc", trunc_len=64, trunc_thresh=0.5, crop_ratio=[0.9, 1.0]),
    dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
    dict(type="Collect", inputs="feats", keys=["masks", "gt_segments", "gt_labels"]),
]
_test_pipe = [
    dict(type="LoadFeats", feat_format="npy"),
    dict(type="ConvertToTensor", keys=["feats"]),
    dict(type="Padding", length=64),
    dict(type="Rearrange", keys=["feats"], ops="t c -> c t"),
    dict(type="Collect", inputs="feats", keys=["masks"]),
]
dataset = dict(train=dict(pipeline=_pipe, **_paths), val=dict(pipeline=_pipe, **_paths),
               test=dict(pipeline=_test_pipe, **_paths))
solver = dict(train=dict(batch_size=2), val=dict(batch_size=2), test=dict(batch_size=2))
optimizer = dict(lr=3e-3)
scheduler = dict(warmup_epoch=1, max_epoch=10)
workflow = dict(logging_interval=100, checkpoint_interval=100, val_loss_interval=-1, val_eval_interval=10)
post_processing = dict(save_dict=True)
work_dir = {work_dir!r}
"""


@pytest.fixture(scope="session")
def trained_feature_model(tiny_data, tmp_path_factory):
    """``config``, ``checkpoint``, ``run_dir`` of the tiny feature model trained on ``tiny_data`` (10 epochs)."""
    from opentad.cores.runner import train

    folder = tmp_path_factory.mktemp("apis_trained")
    config = folder / "tiny_features.py"
    data = data_lines(tiny_data, tiny_data.features)
    config.write_text(TINY_FEATURE_MODEL.format(base=FEATURE_CONFIG, data=data, work_dir=str(folder / "exps")))
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        metrics = train([str(config)])
    finally:
        torch.use_deterministic_algorithms(deterministic)
    run_dir = folder / "exps" / "gpu1_id0"
    return SimpleNamespace(config=str(config), checkpoint=str(run_dir / "checkpoint" / "epoch_9.pth"),
                           run_dir=str(run_dir), metrics=metrics)


@pytest.fixture(scope="session")
def e2e_config(tiny_data, tmp_path_factory):
    """The synthetic AdaTAD config for 2 classes, pointed at ``tiny_data``'s videos."""
    folder = tmp_path_factory.mktemp("apis_e2e")
    config = folder / "tiny_adapter.py"
    config.write_text(
        f"_base_ = [{E2E_CONFIG!r}]\n{data_lines(tiny_data, tiny_data.videos)}"
        "dataset = dict(train=dict(**_paths), val=dict(**_paths), test=dict(**_paths))\n"
        f"model = dict(rpn_head=dict(num_classes=2))\nwork_dir = {str(folder / 'exps')!r}\n"
    )
    return str(config)


def save_random_checkpoint(config: str, path: str, seed: int = 0, options=None) -> str:
    """Build the detector of ``config`` (with ``options`` overrides) from seed ``seed``; save it as training would."""
    from opentad.registry import DETECTORS, build
    from opentad.utils.checkpoint import atomic_save, model_state_dict
    from opentad.utils.config import load_config

    torch.manual_seed(seed)
    model = build(load_config(config, options).model, DETECTORS)
    state = model_state_dict(model)
    atomic_save({"epoch": 0, "state_dict": state, "state_dict_ema": state}, path)
    return path


@pytest.fixture(scope="session")
def e2e_checkpoint(e2e_config, tmp_path_factory):
    """A random-weight checkpoint of ``e2e_config`` (inference plumbing, not accuracy)."""
    return save_random_checkpoint(e2e_config, str(tmp_path_factory.mktemp("apis_ckpt") / "adapter.pth"))


@pytest.fixture(scope="session")
def qlora_model(tiny_data, tmp_path_factory):
    """``config``, ``options`` (2 classes, the tiny class map) and a random-weight QLoRA ``checkpoint``."""
    options = {"model.rpn_head.num_classes": 2, "dataset.test.class_map": tiny_data.class_map}
    path = str(tmp_path_factory.mktemp("apis_qlora") / "qlora.pth")
    return SimpleNamespace(config=QLORA_CONFIG, options=options,
                           checkpoint=save_random_checkpoint(QLORA_CONFIG, path, options=options))


def pytest_collection_modifyitems(items):
    """Under pytest-xdist (``--dist loadgroup``), the tests on ``tiny_data`` run in one worker: its session
    fixtures (rendered videos, the 10-epoch training) are made once, not once per worker."""
    for item in items:
        if "tiny_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("apis_tiny_data"))
