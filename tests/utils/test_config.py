"""Top-level keys and --cfg-options: a key that would be silently ignored is an error naming it."""
import argparse
import os

import pytest

from opentad.registry import ConfigError
from opentad.utils.config import SECTIONS, DictAction, check_config, load_config, validate_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYNTHETIC = os.path.join(ROOT, "configs", "actionformer", "synthetic_features.py")
QLORA = os.path.join(ROOT, "configs", "adatad", "synthetic", "e2e_synthetic_vit_tiny_qlora.py")


def test_misspelled_section_in_cfg_options_is_refused_with_close_match():
    with pytest.raises(ConfigError) as info:
        load_config(SYNTHETIC, {"worflow.end_epoch": 1})
    message = str(info.value)
    assert "worflow.end_epoch" in message and "Did you mean 'workflow'" in message and "\n" not in message
    assert "'load_from'" in message  # the valid keys are listed


def test_helper_variable_override_is_refused_and_points_to_its_uses():
    with pytest.raises(ConfigError) as info:
        load_config(SYNTHETIC, {"trunc_len": 64})
    message = str(info.value)
    assert "'trunc_len' is a helper variable" in message and "no effect" in message and "\n" not in message
    assert "dataset.train.pipeline[2].trunc_len" in message  # where the variable went when the file was read


def test_sections_and_load_from_are_accepted():
    cfg = load_config(SYNTHETIC, {"workflow.end_epoch": 1, "load_from": "x.pth", "work_dir": "w"})
    assert cfg.workflow.end_epoch == 1 and cfg.load_from == "x.pth"
    assert check_config(cfg) == []


@pytest.mark.parametrize(
    "text, needle",
    [
        ("worflow = dict(end_epoch=1)\n", "Did you mean 'workflow'"),
        ("optimiser = dict(lr=1e-3)\n", "Did you mean 'optimizer'"),
    ],
)
def test_unknown_top_level_dict_in_a_file_is_an_error(tmp_path, text, needle):
    path = tmp_path / "cfg.py"
    path.write_text(f"_base_ = [{SYNTHETIC!r}]\n" + text)
    errors = check_config(load_config(str(path)))
    assert len(errors) == 1 and needle in errors[0] and "unknown top-level section" in errors[0]
    with pytest.raises(ConfigError, match="unknown top-level section"):
        validate_config(load_config(str(path)), source=str(path))


def test_helper_variables_in_a_file_are_fine(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text(
        f"_base_ = [{SYNTHETIC!r}]\n"
        "clip_len = 16\nfeat_root = 'data/x'\nscales = [1, 2]\n_paths = dict(a=1)\nnothing = None\n"
    )
    assert check_config(load_config(str(path))) == []


@pytest.mark.parametrize(
    "override, needle",
    [
        ({"work_dir": 5}, "work_dir = 5 (int): expected a string"),
        ({"load_from": 3}, "load_from = 3 (int): expected a string or None"),
        ({"workflow": 3}, "workflow = 3 (int): expected a dict"),
    ],
)
def test_section_types(override, needle):
    errors = check_config(load_config(SYNTHETIC, override))
    assert any(needle in e for e in errors), errors


def test_every_section_is_known():
    assert set(SECTIONS) == {
        "dataset", "model", "solver", "optimizer", "scheduler", "workflow", "inference", "post_processing",
        "evaluation", "work_dir", "load_from",
    }


@pytest.mark.parametrize(
    "override, needle",
    [
        ({"model.rpn_head.num_classes": "five"}, "model.rpn_head.num_classes = 'five' (str): expected an int"),
        ({"optimizer.lr": "abc"}, "optimizer.lr = 'abc' (str): expected a number"),
        ({"optimizer.backbone": dict(lr="x", weight_decay=0.0)},
         "optimizer.backbone.lr = 'x' (str): expected a number"),
        ({"workflow.end_epoch": "two"}, "workflow.end_epoch = 'two' (str): expected an int"),
    ],
)
def test_wrong_value_types_name_key_value_and_expected(override, needle):
    cfg = load_config(SYNTHETIC, override)
    with pytest.raises(ConfigError) as info:
        validate_config(cfg, source="synthetic_features.py")
    message = str(info.value)
    assert needle in message and "\n" not in message and message.startswith("synthetic_features.py: ")


def test_qlora_rank_type():
    cfg = load_config(QLORA, {"model.backbone.backbone.lora_r": "sixteen"})
    errors = check_config(cfg)
    assert errors == [
        "model.backbone.backbone.lora_r = 'sixteen' (str): expected an int (VisionTransformerQLoRA)"
    ]


def _parse(*pairs):
    parser = argparse.ArgumentParser(prog="train.py")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default=None)
    return parser.parse_args(["--cfg-options", *pairs])


def test_dict_action_parses_pairs():
    assert _parse("workflow.end_epoch=3", "a.b=[1,2]").cfg_options == {"workflow.end_epoch": 3, "a.b": [1, 2]}


@pytest.mark.parametrize("pair", ["workflow.end_epoch", "=3", "a=[1,2"])
def test_dict_action_malformed_pair_is_an_argparse_error(pair, capsys):
    with pytest.raises(SystemExit) as info:
        _parse(pair)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --cfg-options" in err and repr(pair)[1:-1] in err and "Traceback" not in err


def test_utils_import_nothing_above_them():
    """The config check finds the engine's section checkers through CONFIG_SECTIONS, not by importing the engine."""
    import ast
    import glob

    above = ("opentad.datasets", "opentad.evaluations", "opentad.models", "opentad.cores", "opentad.apis")
    found = []
    for path in glob.glob(os.path.join(ROOT, "opentad", "utils", "*.py")):
        for node in ast.walk(ast.parse(open(path, encoding="utf8").read())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [(os.path.basename(path), n) for n in names if n.startswith(above)]
    assert found == []
