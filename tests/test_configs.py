"""Every config under configs/ loads, every type resolves, every key binds."""
import glob
import os

import pytest

from opentad.registry import ConfigError, TRANSFORMS, build
from opentad.utils.config import check_config, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.py"), recursive=True)
    if os.sep + "_base_" + os.sep not in p
)


def test_there_are_configs():
    assert CONFIGS, "no config found under configs/"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_types_and_keys_bind(path):
    cfg = load_config(path)
    errors = check_config(cfg)
    assert not errors, f"{os.path.relpath(path, ROOT)}:\n" + "\n".join(errors)


# dataset bases are complete sections on their own (a config only points them at its data): each must check too
DATASET_BASES = sorted(glob.glob(os.path.join(ROOT, "configs", "_base_", "datasets", "**", "*.py"), recursive=True))


@pytest.mark.parametrize("path", DATASET_BASES, ids=lambda p: os.path.relpath(p, ROOT))
def test_dataset_base_types_and_keys_bind(path):
    errors = check_config(load_config(path))
    assert not errors, f"{os.path.relpath(path, ROOT)}:\n" + "\n".join(errors)


def test_misspelled_key_is_reported_with_class_and_key(tmp_path):
    """The checker must fail loudly on a typo, naming key and class."""
    cfg_file = tmp_path / "bad.py"
    cfg_file.write_text(
        "dataset = dict(train=dict(pipeline=[dict(type='ConvertToTensor', keyz=['x'])]))\n"
        "model = dict(type='NoSuchDetector')\n"
    )
    errors = check_config(load_config(str(cfg_file)))
    joined = "\n".join(errors)
    assert "keyz" in joined and "ConvertToTensor" in joined
    assert "NoSuchDetector" in joined
    assert len(errors) == 2


def test_build_rejects_unknown_key_and_suggests():
    with pytest.raises(ConfigError) as info:
        build(dict(type="ConvertToTensor", keyz=["x"]), TRANSFORMS)
    assert "keyz" in str(info.value) and "keys" in str(info.value)


def test_build_does_not_mutate_config():
    cfg = dict(type="ConvertToTensor", keys=["imgs"])
    before = repr(cfg)
    build(cfg, TRANSFORMS)
    assert repr(cfg) == before


def test_unknown_type_lists_close_matches():
    with pytest.raises(ConfigError) as info:
        build(dict(type="ConvertToTensr", keys=[]), TRANSFORMS)
    assert "ConvertToTensor" in str(info.value)


THUMOS_E2E = sorted(glob.glob(os.path.join(ROOT, "configs", "adatad", "thumos", "e2e_*.py")))


@pytest.mark.parametrize("path", THUMOS_E2E, ids=os.path.basename)
def test_memory_options_only_in_the_qlora_configs(path):
    """docs/qlora.md ("Status", "A memory budget"): QLoRA configs store frozen values in bf16 and plan per block
    within a budget that fits a 24 GiB card (22 GiB), with fixed least-memory settings under it for
    ``memory_budget_gib=None`` (offloading; g and H also chunk the backward); AdaTAD stays upstream's."""
    cfg = load_config(path)
    custom = cfg["model"]["backbone"].get("custom", {})
    options = (custom.get("frozen_dtype"), custom.get("offload_activations", False), cfg["solver"].get("amp"))
    if "_qlora" in os.path.basename(path):
        assert options == ("bf16", True, "bf16"), path
        assert custom.get("memory_budget_gib") == 22, path
        quantized_vit = cfg["model"]["backbone"]["backbone"].get("quantize_backbone", False)
        assert quantized_vit == ("videomaev2_g" in path), path  # the NF4 ViT pays off for g only
        # the chunked backward where it was measured to pay off (docs/qlora.md): g (160 and 224 px) and H
        chunked = ("videomaev2_g" in path) or ("videomae_h_" in path)
        assert custom.get("backward_chunks", 0) == (4 if chunked else 0), path
    else:
        assert options[:2] == (None, False) and options[2] in (True, "fp16"), path
        assert "memory_budget_gib" not in custom, path
