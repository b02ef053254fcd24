"""Section checkers: a misspelled key in an untyped section fails validation, naming key and valid keys."""
import os

import pytest

from opentad.registry import ConfigError
from opentad.utils.config import check_config, load_config, validate_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = [os.path.join(ROOT, "configs", "actionformer", n) for n in ("thumos_i3d.py", "synthetic_features.py")]


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_shipped_configs_pass(path):
    assert check_config(load_config(path)) == []


@pytest.mark.parametrize(
    "override, needle",
    [
        ({"solver.clip_grad_nrom": 1}, "clip_grad_nrom"),
        ({"solver.train.batchsize": 2}, "batchsize"),
        ({"solver.amp": "fp8"}, "fp8"),
        ({"workflow.val_start_epochs": 3}, "val_start_epochs"),
        ({"inference.save_raw_predictions": True}, "save_raw_predictions"),
        ({"inference.folder": "x"}, "set by the engine"),
        ({"post_processing.nms.sigmma": 0.5}, "sigmma"),
        ({"post_processing.savedict": True}, "savedict"),
        ({"post_processing.sliding_window": True}, "set by the engine"),
        ({"scheduler.warmup_epochs": 3}, "warmup_epochs"),
        ({"optimizer.weight_decy": 0.1}, "weight_decy"),
        ({"evaluation.tiou_threshold": [0.5]}, "tiou_threshold"),
    ],
)
def test_typo_is_reported(override, needle):
    cfg = load_config(CONFIGS[1], override)
    errors = check_config(cfg)
    assert len(errors) == 1 and needle in errors[0], errors
    with pytest.raises(ConfigError, match=needle):
        validate_config(cfg, source="synthetic_features.py")


def test_unknown_key_message_lists_valid_keys():
    errors = check_config(load_config(CONFIGS[1], {"workflow.loging_interval": 1}))
    assert "logging_interval" in errors[0] and "checkpoint_interval" in errors[0]


@pytest.mark.parametrize(
    "override, needle",
    [
        ({"workflow.end_epoch": "two"}, "workflow.end_epoch = 'two' (str): expected an int"),
        ({"workflow.checkpoint_interval": 2.5}, "workflow.checkpoint_interval = 2.5 (float): expected an int"),
        ({"solver.train.batch_size": "4x"}, "solver.train.batch_size = '4x' (str): expected an int"),
        ({"solver.test.pin_memory": "no"}, "solver.test.pin_memory = 'no' (str): expected True or False or None"),
        ({"solver.ema": "yes"}, "solver.ema = 'yes' (str): expected True or False"),
        ({"solver.clip_grad_norm": "1"}, "solver.clip_grad_norm = '1' (str): expected a number"),
        ({"inference.test_epoch": "last"}, "inference.test_epoch = 'last' (str): expected an int"),
        ({"inference.fuse_list": "a"}, "inference.fuse_list = 'a' (str): expected a list of str"),
        ({"post_processing.nms.sigma": "big"}, "post_processing.nms.sigma = 'big' (str): expected a number"),
        ({"post_processing.nms.use_soft_nms": 1}, "post_processing.nms.use_soft_nms = 1 (int): expected True or False"),
        ({"post_processing.pre_nms_topk": 2.5}, "post_processing.pre_nms_topk = 2.5 (float): expected an int"),
        ({"post_processing.save_dict": "y"}, "post_processing.save_dict = 'y' (str): expected True or False"),
    ],
)
def test_wrong_value_type_is_reported(override, needle):
    errors = check_config(load_config(CONFIGS[1], override))
    assert len(errors) == 1 and needle in errors[0], errors


def test_right_value_types_pass():
    override = {"workflow.end_epoch": 3, "solver.clip_grad_norm": 1, "solver.ema": True,
                "inference.fuse_list": ["a", "b"], "post_processing.pre_nms_thresh": 0}
    assert check_config(load_config(CONFIGS[1], override)) == []


def test_keys_the_engine_sets_are_refused_and_not_listed_as_valid():
    from opentad.cores.sections import LOADER_RUNTIME_KEYS

    errors = check_config(load_config(CONFIGS[1], {"solver.train.batchsize": 2}))
    valid = errors[0].split("Valid keys: ")[1]
    assert "'batch_size'" in valid and "Did you mean 'batch_size'" in errors[0]
    assert not any(repr(k) in valid for k in LOADER_RUNTIME_KEYS), errors
    errors = check_config(load_config(CONFIGS[1], {"solver.train.shuffle": True, "optimizer.params": []}))
    assert sorted(errors) == [
        "optimizer.params: set by the engine, remove it from the config",
        "solver.train.shuffle: set by the engine, remove it from the config",
    ]


def test_nested_dicts_are_checked_only_when_the_section_binds():
    """An unknown key in the section is reported alone; the nested loader dicts are checked once it binds."""
    errors = check_config(load_config(CONFIGS[1], {"solver.trian": {}, "solver.train.batchsize": 2}))
    assert len(errors) == 1 and "['trian']" in errors[0] and "Did you mean 'train'" in errors[0]


@pytest.mark.parametrize(
    "external_cls, needle",
    [
        (dict(type="StandardClasifier", path="x.json"), "unknown external classifier 'StandardClasifier'"),
        (dict(type="StandardClassifier", pth="x.json"), "StandardClassifier got unknown config key(s) ['pth']"),
        (dict(type="StandardClassifier", path="x.json", topk="2"),
         "post_processing.external_cls.topk = '2' (str): expected an int"),
        (dict(path="x.json"), "post_processing.external_cls: expected dict(type=<classifier>, ...) or None"),
        ("StandardClassifier", "post_processing.external_cls = 'StandardClassifier' (str): expected a dict"),
    ],
)
def test_external_classifier_is_checked_before_the_run(external_cls, needle):
    """post_processing.external_cls is checked against its classifier's keys, like any typed dict."""
    errors = check_config(load_config(CONFIGS[1], {"post_processing.external_cls": external_cls}))
    assert len(errors) == 1 and needle in errors[0], errors


def test_external_classifier_configs_pass():
    for cls in (dict(type="UntrimmedNetTHUMOSClassifier", path="u.npy", topk=2), dict(type="PseudoClassifier"), None):
        assert check_config(load_config(CONFIGS[1], {"post_processing.external_cls": cls})) == []
