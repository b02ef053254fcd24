"""Reading run folders (opentad.apis.results): log parsing, model description, recipes."""
import glob
import logging
import os
import re

import pytest

from opentad.apis.results import describe_model, find_recipe, find_run_dirs, parse_log_metrics
from opentad.evaluations import mAP
from opentad.utils.config import load_config
from opentad.utils.logger import setup_logger

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, "configs")

GT = {"database": {
    "v1": {"subset": "test", "duration": 20.0, "frame": 600,
           "annotations": [{"label": "A", "segment": [1.0, 4.0]}, {"label": "B", "segment": [10.0, 12.0]}]},
    "v2": {"subset": "test", "duration": 20.0, "frame": 600, "annotations": [{"label": "A", "segment": [5.0, 9.0]}]},
}}
PRED = {"v1": [{"segment": [1.2, 4.1], "label": "A", "score": 0.9},
               {"segment": [10.5, 13.5], "label": "B", "score": 0.8},
               {"segment": [14.0, 15.0], "label": "A", "score": 0.7}],
        "v2": [{"segment": [4.0, 8.0], "label": "A", "score": 0.6}]}


def test_log_metrics_are_read_back_from_the_evaluator_lines(tmp_path):
    log_file = tmp_path / "train_1.log"
    log = setup_logger(str(log_file)).getChild("test")
    first = mAP(ground_truth_filename=GT, prediction_filename=dict(results={}), subset="test",
                tiou_thresholds=[0.5])
    first.evaluate()
    first.logging(log)  # an earlier evaluation: the last one must win
    evaluator = mAP(ground_truth_filename=GT, prediction_filename=dict(results=PRED), subset="test",
                    tiou_thresholds=[0.3, 0.5, 0.7])
    metrics = evaluator.evaluate()
    evaluator.logging(log)
    for handler in logging.getLogger("opentad").handlers:
        handler.flush()
    average, per = parse_log_metrics(log_file.read_text())
    assert average == pytest.approx(round(100 * metrics["average_mAP"], 2) / 100, abs=1e-9)
    assert per == {t: pytest.approx(round(100 * metrics[f"mAP@{t}"], 2) / 100, abs=1e-9) for t in (0.3, 0.5, 0.7)}
    assert parse_log_metrics("no evaluation here") is None


SETTINGS_BY_SUFFIX = (("adapter_qlora8bit", "qlora-8bit"), ("adapter_qlora", "qlora"), ("adapter_cached", "adapter"),
                      ("adapter", "adapter"), ("frozen", "frozen"), ("fullft", "fullft"), ("side", "side"))


def _expected(path):
    """(size, setting) read off a THUMOS AdaTAD config's file name; None for a suffix not listed here."""
    name = os.path.basename(path)
    size = re.search(r"videomae(?:v2)?_([sblhg])_", name).group(1)
    size = size if size == "g" else size.upper()
    setting = next((setting for suffix, setting in SETTINGS_BY_SUFFIX if name.endswith(f"_{suffix}.py")), None)
    return None if setting is None else (f"ViT-{size}", setting)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIGS, "adatad", "thumos", "*.py"))),
                         ids=os.path.basename)
def test_describe_model_of_the_thumos_recipes(path):
    expected = _expected(path)
    if expected is None:
        pytest.skip(f"no expectation for {os.path.basename(path)} (a new recipe kind)")
    assert describe_model(load_config(path)) == expected


def test_describe_feature_and_other_models():
    assert describe_model(load_config(os.path.join(CONFIGS, "actionformer", "thumos_i3d.py"))) == (
        "features (2048 ch)", "features")
    vit = dict(type="VisionTransformerAdapter", embed_dims=64, depth=4, freeze_vit=False)
    assert describe_model(dict(model=dict(backbone=dict(backbone=vit)))) == ("ViT 64x4", "adapter+vit")
    frozen = dict(backbone=dict(type="VisionTransformerCP", embed_dims=1024, depth=24),
                  custom=dict(freeze_backbone=True))
    assert describe_model(dict(model=dict(backbone=frozen))) == ("ViT-L", "frozen")


def test_recipe_global_batch_and_gpus():
    recipe = find_recipe("e2e_thumos_videomae_s_768x1_160_adapter.py", CONFIGS)
    assert (recipe.global_batch, recipe.gpus) == (2, 2)
    assert recipe.path.endswith(os.path.join("adatad", "thumos", "e2e_thumos_videomae_s_768x1_160_adapter.py"))
    assert find_recipe("synthetic_features.py", CONFIGS).gpus == 2
    assert find_recipe("thumos_i3d.py", CONFIGS).gpus is None
    assert find_recipe("thumos_i3d.py", CONFIGS, recipe_gpus=1).gpus == 1
    assert find_recipe("no_such_config.py", CONFIGS) is None


def test_find_run_dirs(tmp_path):
    for run in ("a/gpu1_id0", "a/gpu2_id3", "b/gpu1_id0"):
        (tmp_path / run).mkdir(parents=True)
    assert find_run_dirs([str(tmp_path / "a"), str(tmp_path / "b" / "gpu1_id0")]) == [
        str(tmp_path / "a" / "gpu1_id0"), str(tmp_path / "a" / "gpu2_id3"), str(tmp_path / "b" / "gpu1_id0")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty holds no run folder"):
        find_run_dirs([str(tmp_path / "empty")])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_run_dirs([str(tmp_path / "nowhere")])


def test_a_real_training_run_is_read_back(trained_feature_model):
    """The session's training run: its metrics.jsonl (eval, params and run records of the engine), saved config."""
    from opentad.apis.results import read_run
    from opentad.registry import DETECTORS, build
    from opentad.utils.misc import count_parameters

    run = read_run(trained_feature_model.run_dir, configs_root=CONFIGS)
    expected = trained_feature_model.metrics
    assert run.source == "metrics.jsonl" and run.evaluated == "epoch 9"
    assert run.average_mAP == pytest.approx(expected["average_mAP"])
    assert run.metrics == {t: pytest.approx(expected[f"mAP@{t}"]) for t in (0.3, 0.4, 0.5, 0.6, 0.7)}
    model = build(load_config(trained_feature_model.config).model, DETECTORS)
    assert (run.trainable_params, run.total_params) == count_parameters(model)
    assert (run.gpus, run.global_batch, run.per_gpu_batch) == (1, 2, 2)
    assert (run.backbone, run.setting, run.config_name) == ("features (16 ch)", "features", "tiny_features.py")
    assert run.recipe is None and run.warnings == []  # tiny_features.py is no recipe under configs/


UPSTREAM_LOG = """{time} Train INFO: Using torch version: 2.0.1, CUDA version: 11.8
{time} Train INFO: Config: 
{config}
{time} Train INFO: Using DDP with total 1 GPUS...
{time} Train INFO: Evaluation starts...
{time} Train INFO: Average-mAP: 60.30 (%)
{time} Train INFO: mAP at tIoU 0.30 is 79.42%
{time} Train INFO: mAP at tIoU 0.50 is 62.65%
{time} Train INFO: mAP at tIoU 0.70 is 35.77%
{time} Train INFO: Training Over...
"""


def test_an_upstream_run_folder_is_read_from_its_log(tmp_path):
    """Upstream OpenTAD copies the raw config (its _base_ does not resolve there) and logs to log.json."""
    from opentad.apis.results import read_run

    recipe = os.path.join(CONFIGS, "adatad", "thumos", "e2e_thumos_videomae_s_768x1_160_adapter.py")
    run = tmp_path / "exps" / "gpu1_id0"
    run.mkdir(parents=True)
    (run / os.path.basename(recipe)).write_text('_base_ = ["../_base_/thumos_768x1_160.py"]\n')
    config = load_config(recipe).pretty_text
    (run / "log.json").write_text(UPSTREAM_LOG.format(time="2024-09-28 16:37:35", config=config))
    summary = read_run(str(run), configs_root=CONFIGS)
    assert summary.source == "log" and summary.average_mAP == pytest.approx(0.603)
    assert summary.metrics == {0.3: pytest.approx(0.7942), 0.5: pytest.approx(0.6265), 0.7: pytest.approx(0.3577)}
    assert (summary.backbone, summary.setting, summary.global_batch, summary.gpus) == ("ViT-S", "adapter", 2, 1)
    assert summary.trainable_params is None
    assert len(summary.warnings) == 1 and "issue #41" in summary.warnings[0]  # 1 GPU where the recipe used 2
