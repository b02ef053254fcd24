"""benchmarks.ddp.data: the ViT-S configs are the recipes with only the training input (and the short-run
settings) changed; the tiny one reads the cache instead of decoding; the datasets have the samples announced."""
import os

import pytest

from benchmarks.ddp.data import (
    CACHED_S_RECIPE,
    RECIPES,
    make_tiny_data,
    make_vit_s_data,
    write_tiny_config,
    write_vit_s_configs,
)
from opentad.datasets import build_dataset
from opentad.utils.config import load_config, validate_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _check_short_run_settings(cfg, epochs):
    assert cfg.solver.static_graph and cfg.solver.fp16_compress
    assert cfg.workflow.end_epoch == epochs and cfg.workflow.checkpoint_interval == 1
    assert cfg.workflow.val_eval_interval == -1 and cfg.workflow.val_loss_interval == -1
    assert cfg.model.backbone.custom.pretrain is None


def test_vit_s_configs_are_the_recipes_reading_the_rendered_cache(tmp_path):
    data = make_vit_s_data(str(tmp_path / "data"), videos=1, repeat=3, seconds=(12.0, 12.0))
    paths, note = write_vit_s_configs(str(tmp_path / "configs"), data, repo=ROOT, epochs=4, workers=2)
    assert note == "2 loader workers per process (set)"
    cached = load_config(os.path.join(ROOT, CACHED_S_RECIPE))
    for label in ("s_qlora", "s_adapter"):
        cfg = load_config(paths[label])
        validate_config(cfg, source=paths[label])
        recipe = load_config(os.path.join(ROOT, RECIPES[label]))
        assert cfg.model.backbone.backbone.to_dict() == recipe.model.backbone.backbone.to_dict()
        assert cfg.model.projection.to_dict() == recipe.model.projection.to_dict()
        assert cfg.optimizer.to_dict() == recipe.optimizer.to_dict()
        assert cfg.scheduler.to_dict() == recipe.scheduler.to_dict()
        assert cfg.model.backbone.data_preprocessor.to_dict() == cached.model.backbone.data_preprocessor.to_dict()
        assert cfg.solver.amp == recipe.solver.amp and cfg.solver.ema == recipe.solver.ema
        assert cfg.solver.train.batch_size == recipe.solver.train.batch_size == 2
        assert cfg.solver.train.num_workers == 2 and cfg.solver.train.persistent_workers
        _check_short_run_settings(cfg, 4)
        load = cfg.dataset.train.pipeline[0]
        assert load.type == "LoadCachedFrames" and load.check_source is False and load.cache_dir == data.cache
        assert load.trunc_len == recipe.dataset.train.pipeline[2].trunc_len == 768
        assert [step.type for step in cfg.dataset.train.pipeline[1:]] == [
            step.type for step in cached.dataset.train.pipeline[1:]]
        assert len(build_dataset(cfg.dataset.train.to_dict())) == data.samples == 3  # 1 video listed 3 times


def test_tiny_config_keeps_the_recipes_augmentation_after_the_cache(tmp_path):
    data = make_tiny_data(str(tmp_path / "data"), videos=2, short=True)
    cfg = load_config(write_tiny_config(str(tmp_path / "configs"), data, repo=ROOT, epochs=3))
    validate_config(cfg, source="tiny")
    recipe = load_config(os.path.join(ROOT, RECIPES["tiny_qlora"]))
    assert cfg.model.backbone.backbone.to_dict() == recipe.model.backbone.backbone.to_dict()
    _check_short_run_settings(cfg, 3)
    types = [step.type for step in cfg.dataset.train.pipeline]
    recipe_types = [step.type for step in recipe.dataset.train.pipeline]
    assert types == ["LoadCachedFrames"] + recipe_types[recipe_types.index("mmaction.DecordDecode") + 1:]
    assert cfg.solver.train.batch_size == 2 and len(build_dataset(cfg.dataset.train.to_dict())) == 2


def test_cpu_augmentation_variant_is_the_recipes_pipeline_after_the_cache(tmp_path):
    data = make_vit_s_data(str(tmp_path / "data"), videos=1, repeat=1, seconds=(12.0, 12.0))
    paths, _ = write_vit_s_configs(str(tmp_path / "configs"), data, repo=ROOT, epochs=2, workers=3, augment="cpu")
    cfg = load_config(paths["s_qlora"])
    recipe = load_config(os.path.join(ROOT, RECIPES["s_qlora"]))
    validate_config(cfg, source="cpu variant")
    assert cfg.model.backbone.data_preprocessor.to_dict() == recipe.model.backbone.data_preprocessor.to_dict()
    recipe_steps = [dict(step) for step in recipe.dataset.train.pipeline]
    # decoding, LoadFrames and Resize(-1, 182) become one LoadCachedFrames; the augmentation follows unchanged
    assert [s["type"] for s in recipe_steps[:5]] == ["PrepareVideoInfo", "mmaction.DecordInit", "LoadFrames",
                                                     "mmaction.DecordDecode", "mmaction.Resize"]
    assert [dict(step) for step in cfg.dataset.train.pipeline[1:]] == recipe_steps[5:]
    assert cfg.dataset.train.pipeline[0].type == "LoadCachedFrames" and cfg.dataset.train.pipeline[0].short_side == 182
    with pytest.raises(ValueError, match="'tpu'"):
        write_vit_s_configs(str(tmp_path / "c2"), data, repo=ROOT, epochs=2, augment="tpu")
