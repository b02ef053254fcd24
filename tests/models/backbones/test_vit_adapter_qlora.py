"""QLoRA-AdaTAD backbone: trainable set, identity at init, quantization equivalence,
adapter_pretrain, and counts of the ViT-S config (checkpoints, merging, EMA: tests/models/utils/test_qlora.py)."""
import copy

import pytest
import torch
from torch.func import functional_call

from opentad.models.backbones.vit_adapter import VisionTransformerAdapter
from opentad.models.backbones.vit_adapter_qlora import QLoRAAdapter, VisionTransformerQLoRA
from opentad.models.bricks.lora import LoRALinear
from opentad.models.bricks.quant import dequantize_weight, is_quantized

TINY = dict(
    img_size=32, patch_size=16, embed_dims=64, depth=2, num_heads=2, mlp_ratio=2.0, num_frames=4,
    total_frames=8, adapter_index=[0, 1], return_feat_map=True, drop_path_rate=0.0,
)


def _frames(seed=0, videos=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2 * videos, 3, 4, 32, 32, generator=g)  # 2 clips of 4 frames = 8 frames per video


def _qlora(seed=0, prepare=True, perturb=True, **kwargs):
    torch.manual_seed(seed)
    model = VisionTransformerQLoRA(**TINY, lora_r=4, lora_alpha=8, lora_dropout=0.0, **kwargs)
    if perturb:  # stand-in for trained adapters: non-zero up projections
        with torch.no_grad():
            for _, adapter in model.named_adapters():
                adapter.up_proj.base_layer.weight.normal_(0, 0.05)
    if prepare:
        model.on_weights_loaded()
        model.freeze()
    return model.eval()


# NF4 levels as published with QLoRA (Dettmers et al. 2023, appendix E).
NF4_LEVELS = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
], dtype=torch.float64)  # fmt: skip


def _quantized_weights(float_model, quantized):
    """``{name: (float weight, dequantized weight, 4-bit quant state or None for int8)}``, float64."""
    floats = dict(float_model.named_parameters())
    found = {}
    for name, module in quantized.named_modules():
        if is_quantized(module):
            state = getattr(module.weight, "quant_state", None)
            found[f"{name}.weight"] = (floats[f"{name}.weight"].detach().double(),
                                       dequantize_weight(module).double(), state)  # fmt: skip
    return found


def _scale_error_bound(state, absmax):
    """Largest error of the stored block scales: none when kept in float32; with double quantization
    (8-bit code, scales minus their mean ``offset``), half the widest gap of that code times the
    largest ``|absmax - offset|``."""
    if not state.nested:
        return torch.zeros_like(absmax)
    code = state.state2.code.double().sort().values
    return float((code[1:] - code[:-1]).max()) / 2 * (absmax - float(state.offset)).abs().max()


def _assert_within_format_error(float_model, quantized):
    """Every dequantized element within the format's own rounding bound.

    4-bit NF4, blocks of ``blocksize`` consecutive elements with absmax ``A``, stored as ``A'`` (the
    largest dequantized magnitude of the block, since ``+-A`` maps to the level +-1) within the scale
    bound of :func:`_scale_error_bound`: ``|w - deq| <= g A + |A' - A|``, ``g`` half the widest gap
    between NF4 levels. 8-bit (LLM.int8 rows; bitsandbytes quantizes the weight's float16 copy, so add
    that rounding, ``2^-11 |w|``): ``|w - deq| <= A'_row / 254 + 2^-11 |w|``. Plus 8 float32 roundings.
    """
    eps = torch.finfo(torch.float32).eps
    half_gap = float((NF4_LEVELS[1:] - NF4_LEVELS[:-1]).max()) / 2
    weights = _quantized_weights(float_model, quantized)
    assert weights
    for name, (w, deq, state) in weights.items():
        if state is None:
            absmax, stored = w.abs().amax(dim=1, keepdim=True), deq.abs().amax(dim=1, keepdim=True)
            bound = stored / 254 + 2.0**-11 * w.abs() + 8 * eps * absmax
        else:
            blocks, deq_blocks = w.reshape(-1, state.blocksize), deq.reshape(-1, state.blocksize)
            absmax = blocks.abs().amax(dim=1, keepdim=True)
            stored = deq_blocks.abs().amax(dim=1, keepdim=True)
            scale_error = (stored - absmax).abs()
            assert (scale_error <= _scale_error_bound(state, absmax) + 8 * eps * absmax).all(), (name, "block scale")
            bound = (half_gap * absmax + scale_error + 8 * eps * absmax).expand_as(blocks).reshape(w.shape)
        assert ((w - deq).abs() <= bound).all(), (name, float(((w - deq).abs() - bound).max()))


def _assert_deviation_explained(float_model, quantized, x):
    """The quantized model's output against an error model computed from its actual weights.

    ``g(s)``: the float model in float64 with each quantized weight ``W + s dW`` (``dW`` the
    dequantization error), so ``g(0)`` is the float model and ``g(1)`` the dequantized one.

    1. Float32 rounding: the quantized model computes ``g(1)`` in float32 with the float model's
       architecture and magnitudes, so its error is of the size of the float model's own,
       ``delta = max|f32 - g(0)|`` (measured here); allowed 4 delta.
    2. The deviation ``g(1) - g(0)`` is its first-order term ``D1 = g'(0)`` (central difference,
       float64) plus a remainder of second order, relative size of the order of the largest relative
       weight error ``e = max ||dW|| / ||W||``; allowed ``2 e |D1|``.
    Together: ``max|out - float32 model| <= (1 + 2e) max|D1| + 5 delta``.
    """
    with torch.no_grad():
        out, ref32 = quantized(x).double(), float_model(x).double()
        weights = _quantized_weights(float_model, quantized)
        model64 = copy.deepcopy(float_model).double()
        base = {n: p.detach() for n, p in model64.named_parameters()}
        x64 = x.double()

        def g(s):
            moved = {n: base[n] + s * (deq - w) for n, (w, deq, _) in weights.items()}
            return functional_call(model64, {**base, **moved}, (x64,))

        ref64, deq64, h = g(0.0), g(1.0), 2.0**-8
        first = (g(h) - g(-h)) / (2 * h)
    delta = float((ref32 - ref64).abs().max())
    e = max(float((deq - w).norm() / w.norm()) for w, deq, _ in weights.values())
    d1 = float(first.abs().max())
    assert float((out - deq64).abs().max()) <= 4 * delta
    assert float((deq64 - ref64 - first).abs().max()) <= 2 * e * d1
    deviation = float((out - ref32).abs().max())
    assert 0 < deviation <= (1 + 2 * e) * d1 + 5 * delta, (deviation, d1, e, delta)


def _randomise_lora(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_b.weight.copy_(torch.randn(m.lora_b.weight.shape, generator=g) * 0.1)


def test_vit_s_counts_match_the_design_note(caplog):
    cfg = dict(
        img_size=224, patch_size=16, embed_dims=384, depth=12, num_heads=6, mlp_ratio=4, num_frames=16,
        total_frames=768, adapter_index=list(range(12)), lora_r=16, lora_alpha=32, lora_dropout=0.1,
    )
    with caplog.at_level("INFO", logger="opentad"):
        model = VisionTransformerQLoRA(**cfg)
    assert "ViT parameters: 21,879,936, QLoRA adapter parameters: 1,185,420 (5.4% of the ViT)" in caplog.text
    # the same numbers by hand: AdaTAD adapter minus projection biases plus 2 LoRA pairs
    per_block = (384 * 96 + 96 * 384) + (96 * 3 + 96) + (96 * 96 + 96) + 1 + 16 * (384 + 96) * 2
    assert per_block * 12 == 1_185_420
    assert isinstance(model.blocks[0].adapter, QLoRAAdapter)


@pytest.mark.parametrize("bits", [4, 8])
def test_only_lora_gamma_and_convs_train_and_get_gradients(bits):
    model = _qlora(quantize_bits=bits)
    _randomise_lora(model)
    model.train()
    out = model(_frames())
    out.square().mean().backward()
    expected = {"down_proj.lora_a.weight", "down_proj.lora_b.weight", "up_proj.lora_a.weight",
                "up_proj.lora_b.weight", "gamma", "dwconv.weight", "dwconv.bias", "conv.weight", "conv.bias"}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"blocks.{i}.adapter.{n}" for i in range(2) for n in expected}
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    quantized = [m for m in model.modules() if is_quantized(m)]
    assert len(quantized) == 4 and all(not m.weight.requires_grad for m in quantized)


def test_freeze_never_raises_and_is_idempotent():
    model = _qlora(quantize_bits=4, quantize_backbone=True, backbone_lora_targets=["qkv"])
    model.freeze()
    model.freeze()
    assert all(not m.weight.requires_grad for m in model.modules() if is_quantized(m))


@pytest.mark.parametrize("bits", [4, 8])
def test_adapter_is_identity_at_initialisation(bits):
    qlora = _qlora(quantize_bits=bits, perturb=False)
    plain = VisionTransformerAdapter(**TINY)
    plain.load_state_dict({k: v for k, v in qlora.state_dict().items() if ".adapter." not in k}, strict=False)
    for block in plain.blocks:
        block.adapter = None  # the plain ViT
    x = _frames(3)
    assert torch.equal(qlora(x), plain.eval()(x))


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("backbone", [False, True])
def test_equals_dequantized_model_and_stays_near_float_model(bits, backbone):
    float_model = _qlora(prepare=False)
    qlora = copy.deepcopy(float_model)
    qlora.quantize_bits = bits
    qlora.adapter_spec = type(qlora.adapter_spec)(bits=bits)
    qlora.quantize_backbone = backbone
    qlora.on_weights_loaded()
    qlora.eval()
    x = _frames(4)
    _assert_within_format_error(float_model.eval(), qlora)
    # equals the dequantized model up to float32 rounding, and deviates from the float model by
    # what the weights' quantization error predicts (error model in the helper's docstring)
    _assert_deviation_explained(float_model, qlora, x)


def test_quantize_backbone_keeps_float_what_should_stay_float():
    model = _qlora(quantize_backbone=True, backbone_lora_targets=["qkv", "fc2"])
    block = model.blocks[0]
    assert isinstance(block.attn.qkv, LoRALinear) and is_quantized(block.attn.qkv.base_layer)
    assert is_quantized(block.attn.proj) and is_quantized(block.mlp.layers[0][0])
    assert block.attn.proj.weight.quant_state.quant_type == "nf4" and block.attn.proj.weight.quant_state.nested
    for tensor in (model.patch_embed.projection.weight, block.norm1.weight, block.attn.q_bias, model.pos_embed,
                   block.attn.proj.bias):
        assert tensor.is_floating_point()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad and ".adapter." not in n}
    assert trainable == {f"blocks.{i}.{m}.lora_{ab}.weight" for i in range(2) for ab in "ab"
                         for m in ("attn.qkv", "mlp.layers.1")}


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="bogus"):
        VisionTransformerQLoRA(**TINY, quantize_backbone=True, backbone_lora_targets=["bogus"])
    with pytest.raises(ValueError, match="3"):
        VisionTransformerQLoRA(**TINY, quantize_bits=3)


def test_adapter_pretrain_loads_an_adatad_checkpoint(tmp_path):
    torch.manual_seed(5)
    adatad = VisionTransformerAdapter(**TINY).eval()
    with torch.no_grad():
        for _, adapter in adatad.named_adapters():
            for p in adapter.parameters():
                p.normal_(0, 0.05)
    prefix = "backbone.model.backbone."  # OpenTAD's nesting inside the detector
    path = tmp_path / "adatad.pth"
    torch.save({"state_dict": {prefix + k: v for k, v in adatad.state_dict().items()}}, path)
    float_qlora = _qlora(perturb=False, prepare=False, adapter_pretrain=str(path), quantize_adapters=False)
    float_qlora.load_state_dict({k: v for k, v in adatad.state_dict().items() if ".adapter." not in k}, strict=False)
    float_qlora.on_weights_loaded()
    x = _frames(6)
    torch.testing.assert_close(float_qlora.eval()(x), adatad(x), atol=1e-6, rtol=0)
    quantized = _qlora(perturb=False, prepare=False, adapter_pretrain=str(path))
    quantized.load_state_dict({k: v for k, v in adatad.state_dict().items() if ".adapter." not in k}, strict=False)
    quantized.on_weights_loaded()
    _assert_within_format_error(float_qlora, quantized.eval())
    _assert_deviation_explained(float_qlora, quantized, x)  # float_qlora computes adatad's function


def test_adapter_pretrain_without_a_block_names_it(tmp_path):
    path = tmp_path / "empty.pth"
    torch.save({"state_dict": {"blocks.5.adapter.gamma": torch.ones(1)}}, path)
    model = _qlora(prepare=False, adapter_pretrain=str(path))
    with pytest.raises(KeyError, match="block 0"):
        model.on_weights_loaded()
