"""The adapter-state interface on a tiny QLoRA ViT: what trains, exact checkpoint round trips and resume,
the quantization check on load, merging into AdaTAD, and the EMA of a quantized model."""
import pytest
import torch
from torch import nn

from opentad.models.backbones.vit_adapter import VisionTransformerAdapter
from opentad.models.backbones.vit_adapter_qlora import VisionTransformerQLoRA
from opentad.models.bricks.lora import LoRALinear
from opentad.models.bricks.quant import dequantize_weight
from opentad.models.bricks.quant_io import export_quantized
from opentad.models.detectors.base import BaseDetector
from opentad.models.utils.qlora import (
    load_checkpoint_state,
    load_qlora_state_dict,
    merged_state_dict,
    qlora_state_dict,
    quantized_modules,
    quantized_tensors,
    train_declared,
)
from opentad.utils.checkpoint import load_model_state, model_state_dict
from opentad.utils.ema import ModelEma

pytest.importorskip("bitsandbytes")

TINY = dict(
    img_size=32, patch_size=16, embed_dims=64, depth=2, num_heads=2, mlp_ratio=2.0, num_frames=4,
    total_frames=8, adapter_index=[0, 1], return_feat_map=True, drop_path_rate=0.0,
)
EPS = torch.finfo(torch.float32).eps


def _frames(seed=0):
    return torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(seed))  # one video of 8 frames


def _qlora(seed=0, **kwargs):
    """A prepared (quantized, frozen) tiny QLoRA ViT; non-zero up projections stand in for trained adapters."""
    torch.manual_seed(seed)
    model = VisionTransformerQLoRA(**TINY, lora_r=4, lora_alpha=8, lora_dropout=0.0, **kwargs)
    with torch.no_grad():
        for _, adapter in model.named_adapters():
            adapter.up_proj.base_layer.weight.normal_(0, 0.05)
    model.on_weights_loaded()
    return model.eval()


def _randomise_lora(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_b.weight.copy_(torch.randn(m.lora_b.weight.shape, generator=g) * 0.1)


def test_train_declared_lets_only_declared_parameters_train():
    model = nn.Sequential(LoRALinear(nn.Linear(6, 4), r=2, alpha=2), nn.Linear(4, 2))
    model.requires_grad_(False)
    train_declared(model)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"0.lora_a.weight", "0.lora_b.weight"}


def test_quantized_tensors_are_what_each_layer_exports():
    model = _qlora(quantize_backbone=True)
    layers = quantized_modules(model)
    assert len(layers) == 2 * 2 + 2 * 4  # two adapter projections and four block linears per block
    expected = {f"{n}.{k}": v for n, layer in layers.items() for k, v in export_quantized(layer).items()}
    got = quantized_tensors(model)
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)


@pytest.mark.parametrize("bits", [4, 8])
def test_checkpoint_round_trip_is_exact(bits, tmp_path):
    model = _qlora(quantize_bits=bits, quantize_backbone=True, backbone_lora_targets=["proj"])
    _randomise_lora(model)
    path = tmp_path / "ckpt.pth"
    torch.save(qlora_state_dict(model), path)
    restored = _qlora(seed=99, quantize_bits=bits, quantize_backbone=True, backbone_lora_targets=["proj"])
    assert load_qlora_state_dict(restored, torch.load(path, weights_only=True)) == ([], [])
    x = _frames(7)
    assert torch.equal(restored(x), model(x))
    for (n1, t1), (n2, t2) in zip(model.state_dict().items(), restored.state_dict().items()):
        assert n1 == n2 and torch.equal(t1, t2), n1


def test_checkpoint_of_a_mismatching_model_lists_keys():
    state = qlora_state_dict(_qlora())
    with pytest.raises(ValueError, match="blocks.0.attn.qkv"):
        load_qlora_state_dict(_qlora(quantize_backbone=True), state)


def test_quantized_and_float_states_do_not_cross():
    float_model = nn.Linear(4, 2)
    with pytest.raises(ValueError, match="a QLoRA checkpoint into a float model; merge it first"):
        load_checkpoint_state(float_model, qlora_state_dict(_qlora()))
    with pytest.raises(ValueError, match="a float checkpoint into a QLoRA model"):
        load_checkpoint_state(_qlora(), VisionTransformerAdapter(**TINY).state_dict())
    assert load_checkpoint_state(float_model, float_model.state_dict()) is None  # left to the plain path


def test_merge_gives_an_adatad_model_with_the_same_outputs():
    """The merged AdaTAD model in float64 is the reference; both float32 models compute its function with the
    same magnitudes, so the QLoRA model's rounding error is of the size of AdaTAD's own, ``delta``: allowed 4 delta."""
    model = _qlora(quantize_bits=4, quantize_backbone=True, backbone_lora_targets=["qkv"])
    _randomise_lora(model)
    adatad = VisionTransformerAdapter(**TINY).eval()
    result = adatad.load_state_dict(merged_state_dict(model), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = _frames(8)
    with torch.no_grad():
        got, own = model(x).double(), adatad(x).double()
        reference = adatad.double()(x.double())
    delta = float((own - reference).abs().max())
    assert 0 < float((got - reference).abs().max()) <= 4 * delta


@pytest.mark.parametrize("bits", [4, 8])
def test_ema_blends_lora_and_leaves_quantized_state_bit_identical(bits):
    """Trainable tensors blend halfway (decay 0.5): float32 rounds the model's ``+ 1`` and the EMA's two products
    and sum, so within ``4 eps |value|``; everything else (packed bytes, scales, frozen floats) is copied exactly."""
    model = _qlora(quantize_bits=bits, quantize_backbone=True, backbone_lora_targets=["qkv"])
    ema = ModelEma(model, decay=0.5)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        for name in trainable:
            model.get_parameter(name).add_(1.0)
    ema.update(model)
    for key, value in ema.module.state_dict().items():
        if key in trainable:
            expected = before[key].double() + 0.5
            assert ((value.double() - expected).abs() <= 4 * EPS * (expected.abs() + 1)).all(), key
        else:
            assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("bits", [4, 8])
def test_ema_set_copies_the_quantized_layers_of_a_loaded_checkpoint(bits):
    """After ``--load-from`` the EMA restarts from the detector: a checkpoint of another base (other packed bytes
    and block scales) must reach the EMA's quantized layers whole, statistics included."""
    model = BaseDetector(backbone=_qlora(quantize_bits=bits))
    ema = ModelEma(model, decay=0.9)
    other = BaseDetector(backbone=_qlora(seed=5, quantize_bits=bits))
    _randomise_lora(other)
    load_model_state(model, model_state_dict(other))
    ema.set(model)
    for name, layer in quantized_modules(model).items():
        assert torch.equal(dequantize_weight(ema.module.get_submodule(name)), dequantize_weight(layer)), name
    x = _frames(3)
    with torch.no_grad():
        assert torch.equal(ema.module.backbone(x), other.backbone(x))


def test_resume_from_qlora_checkpoint_continues_exactly(tmp_path):
    """Train 2 steps, save (QLoRA state + optimizer), rebuild, load, train 1 more step:
    equals 3 uninterrupted steps bit for bit."""

    def step(model, optim, seed):
        optim.zero_grad()
        model(_frames(seed)).square().mean().backward()
        optim.step()

    def fresh(seed):
        model = _qlora(seed=seed, quantize_bits=4, quantize_backbone=True, backbone_lora_targets=["fc1"]).train()
        return model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    straight, optim = fresh(0)
    for s in range(3):
        step(straight, optim, s)

    first, optim = fresh(0)
    for s in range(2):
        step(first, optim, s)
    torch.save({"model": qlora_state_dict(first), "optim": optim.state_dict()}, tmp_path / "ckpt.pth")
    resumed, optim = fresh(0)  # rebuilt from the config (same seed, same base), then loaded
    ckpt = torch.load(tmp_path / "ckpt.pth", weights_only=True)
    load_qlora_state_dict(resumed, ckpt["model"])
    optim.load_state_dict(ckpt["optim"])
    step(resumed, optim, 2)
    for (name, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters()):
        assert torch.equal(a, b), name


def test_checkpoint_of_a_pretrained_base_keeps_checksums_and_refuses_another_base():
    """Frozen tensors a backbone wrapper rebuilds from its pretrain file are stored as checksums; a rebuilt base that
    differs (one norm weight moved by 1e-4, far above the checksum's relative tolerance of 1e-9) is refused."""

    class Wrapper(nn.Module):  # what the backbone wrapper looks like to the interface: options.pretrain, model.backbone
        def __init__(self, seed):
            super().__init__()
            self.options = type("Options", (), {"pretrain": "vit.pth"})()
            self.model = nn.Module()
            self.model.backbone = _qlora(seed=seed, quantize_backbone=True)

    saved = Wrapper(0)
    state = qlora_state_dict(saved)
    assert "model.backbone.blocks.0.attn.qkv" in state["checksums"] and "model.backbone.pos_embed" in state["checksums"]
    assert not any(".adapter." in k for k in state["checksums"])  # adapters are always stored
    target = Wrapper(0)
    assert load_qlora_state_dict(target, state) == ([], [])
    norm = target.model.backbone.blocks[1].norm1.weight
    with torch.no_grad():
        norm[3] += 1e-4
    with pytest.raises(ValueError, match=r"other base weights for 'model.backbone.blocks.1.norm1.weight'"):
        load_qlora_state_dict(target, state)
