"""Shared fixtures of the engine tests: tiny synthetic data, a tiny config, and global-state hygiene."""
import logging
import os
import textwrap

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYNTHETIC_CONFIG = os.path.join(ROOT, "configs", "actionformer", "synthetic_features.py")


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


@pytest.fixture
def log_text():
    """The text logged under ``opentad`` during the test (a handler of its own: the logger may not propagate)."""
    lines = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())
    log = logging.getLogger("opentad")
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield lambda: "\n".join(lines)
    log.removeHandler(handler)
    log.setLevel(old_level)


def generate_synthetic(root, **overrides):
    """Features-only synthetic data under ``root/data/synthetic-thumos`` (the configs' relative paths)."""
    from opentad.datasets.synthetic import generate_dataset, settings_from_preset

    settings = settings_from_preset("default", dict(write_videos=False, **overrides))
    generate_dataset(settings, os.path.join(str(root), "data", "synthetic-thumos"))
    return root


@pytest.fixture
def synthetic_data():
    """``generate(root, **settings)``: features-only synthetic data under ``root/data/synthetic-thumos``."""
    return generate_synthetic


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory):
    """6 training and 3 test videos of 4-8 s (30-60 feature rows), 2 classes, 16 channels."""
    return generate_synthetic(
        tmp_path_factory.mktemp("tiny_synthetic"),
        num_train=6, num_test=3, num_classes=2, min_duration=4.0, max_duration=8.0, feat_dim=16,
        min_action=0.5, max_action=2.0, median_action=1.0,
    )


TINY_CONFIG = """
_base_ = [{base!r}]
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
dataset = dict(train=dict(pipeline=_pipe), val=dict(pipeline=_pipe), test=dict(pipeline=_test_pipe))
solver = dict(train=dict(batch_size=2), val=dict(batch_size=2), test=dict(batch_size=2))
scheduler = dict(warmup_epoch=1, max_epoch=3)
workflow = dict(logging_interval=1, checkpoint_interval=1, val_loss_interval=1, val_eval_interval=2)
work_dir = {work_dir!r}
"""


@pytest.fixture
def tiny_config(tmp_path):
    """A config file: the synthetic-features recipe shrunk to a 16-channel model on the tiny data."""
    path = tmp_path / "tiny_actionformer.py"
    path.write_text(textwrap.dedent(TINY_CONFIG.format(base=SYNTHETIC_CONFIG, work_dir=str(tmp_path / "exps"))))
    return str(path)
