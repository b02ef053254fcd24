"""``custom.frozen_fp8`` in a model: installed by the memory policy on exactly the eligible frozen 4-bit layers
(the same parameters train), refused without bf16 frozen values, removable; the fp8 weight copies made before
the step, per weight and per copy, and made again for new weights; the modes and what each keeps; where a held
bf16 copy of the weights still serves a product."""
import pytest
import torch

from opentad.models.backbones.wrapper_options import WrapperOptions
from opentad.models.memory import fp8_matmul as F8
from opentad.models.memory import fp8_rows as R8
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from opentad.registry import ConfigError
from tests.models.memory.fp8_layers import BF16, frozen_layer, spread_inputs
from tests.models.memory.wrappers import wrapper_config

pytest.importorskip("bitsandbytes")


def test_a_weight_changed_in_place_is_quantized_again():
    layer, other = frozen_layer(32, 32, seed=0), frozen_layer(32, 32, seed=1)
    F8.set_fp8_products(layer, True)
    x = spread_inputs(8, 32)
    before = layer(x)
    with torch.no_grad():  # as loading a state dict does: an in-place copy into the parameter
        layer.weight.copy_(other.weight)
    after = layer(x)
    layer.__dict__.pop("_fp8_cache")
    assert not torch.equal(before, after) and torch.equal(after, layer(x))


def _wrapper(fp8: bool):
    from opentad.models.builder import build_backbone

    cfg = wrapper_config(type="VisionTransformerQLoRA", depth=2, adapter_index=[0, 1], lora_r=4, lora_alpha=8,
                         lora_dropout=0.0, quantize_bits=4, quantize_backbone=True)
    cfg["custom"]["frozen_fp8"] = fp8
    torch.manual_seed(0)
    return build_backbone(cfg).train()


def test_the_policy_installs_it_on_every_frozen_4bit_layer_and_the_same_parameters_train(monkeypatch):
    """The ViT's block linears (widths 32, 64, 96) run in fp8; the adapters' 32 -> 8 -> 32 cannot (``_scaled_mm``
    needs multiples of 16) and keep their bf16 product."""
    calls = []
    real = F8._FP8FrozenMatmul.apply
    monkeypatch.setattr(F8._FP8FrozenMatmul, "apply", lambda *a: calls.append(a[1]) or real(*a))
    grads, keys = {}, {}
    for fp8 in (False, True):
        model = _wrapper(fp8)
        frozen4 = [m for m in model.modules() if hasattr(type(m), "frozen_matmul")]
        assert len(frozen4) > 0
        assert all((m.__dict__.get("frozen_matmul") is F8.fp8_frozen_linear) == fp8 for m in frozen4)
        frames = torch.randint(0, 256, (2, 1, 3, 16, 32, 32), generator=torch.Generator().manual_seed(0),
                               dtype=torch.uint8)
        with torch.autocast("cpu", dtype=BF16):
            feats = model(frames)
        feats.float().square().mean().backward()
        assert torch.isfinite(feats).all()
        grads[fp8] = {n for n, p in model.named_parameters() if p.grad is not None}
        keys[fp8] = set(model.state_dict())
        if fp8:
            eligible = {id(m) for m in frozen4 if m.in_features % 16 == 0 and m.out_features % 16 == 0}
            assert len(eligible) == 8 and len(frozen4) == 12  # 2 blocks x (qkv, proj, fc1, fc2); 2 adapters x 2
            assert {id(m) for m in calls} == eligible
        else:
            assert not calls
    assert keys[True] == keys[False] and not any("fp8" in key for key in keys[True])
    assert grads[True] == grads[False] and any("lora" in n for n in grads[True])


def test_it_is_refused_without_bf16_frozen_values():
    with pytest.raises(ValueError, match="frozen_fp8.*frozen_dtype bf16"):
        MemoryPolicy(frozen_fp8=True, frozen_dtype=torch.float16)
    with pytest.raises(ConfigError, match="frozen_fp8"):
        WrapperOptions.from_mapping(dict(frozen_fp8=True))


def test_removing_it_restores_the_bf16_product():
    layer = frozen_layer(32, 32)
    x = spread_inputs(8, 32)
    plain = layer(x)
    apply_memory_policy(layer, MemoryPolicy(frozen_dtype=BF16, frozen_fp8=True))
    assert not torch.equal(layer(x), plain) and "_fp8_cache" in layer.__dict__
    apply_memory_policy(layer, MemoryPolicy(frozen_dtype=BF16))
    assert "_fp8_cache" not in layer.__dict__ and torch.equal(layer(x), plain)


def test_the_fp8_weights_are_quantized_before_the_step_for_the_memory_plan(monkeypatch):
    model = _wrapper(True)
    eligible = [m for m in model.modules() if hasattr(type(m), "frozen_matmul")
                and m.in_features % 16 == 0 and m.out_features % 16 == 0]
    assert not any("_fp8_cache" in m.__dict__ for m in eligible)
    size = F8.quantize_fp8_weights(model, torch.device("cpu"))
    assert size == sum(m.in_features * m.out_features + 4 * m.out_features for m in eligible)
    assert all("_fp8_cache" in m.__dict__ for m in eligible)
    seen = []
    monkeypatch.setattr(F8, "quantize_fp8_weights", lambda module, device: seen.append(device) or 0)
    from opentad.models.memory import policy as policy_module

    monkeypatch.setattr(policy_module, "quantize_fp8_weights", F8.quantize_fp8_weights)
    frames = torch.zeros(2, 1, 3, 16, 32, 32, dtype=torch.uint8)
    with torch.autocast("cpu", dtype=BF16):
        model(frames)
    assert seen == [torch.device("cpu")]  # the policy asked, once, for the frames' device


def test_a_device_without_fp8_products_is_named_once(caplog):
    R8.fp8_supported.cache_clear()
    with caplog.at_level("WARNING", logger="opentad.models.memory.fp8_rows"):
        assert not R8.fp8_supported(torch.device("meta")) and not R8.fp8_supported(torch.device("meta"))
        assert R8.fp8_supported(torch.device("cpu"))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "meta has no fp8 matrix products" in warnings[0] and "bf16" in warnings[0]


def test_weights_loaded_again_are_quantized_again_whatever_address_they_get():
    """Loading quantized weights replaces the parameter (and its quantization state), and a new weight may
    take a freed one's address with a fresh version counter. The worst case, made on purpose: a new weight
    over the very bytes of the cached one, with another layer's statistics. The cache must see another
    weight, not an unchanged address and version."""
    from opentad.models.bricks.quant_io import export_quantized, import_quantized

    target, other = frozen_layer(64, 48, seed=0), frozen_layer(64, 48, seed=5)
    x = spread_inputs(8, 64)
    F8.set_fp8_products(target, True)
    before = target(x)  # cached from the first weight
    state = export_quantized(other)
    state["weight"] = target.weight.data  # the same storage, so the same address
    import_quantized(target, state)
    assert target.weight.untyped_storage().data_ptr() == state["weight"].untyped_storage().data_ptr()
    fresh = frozen_layer(64, 48)
    import_quantized(fresh, {k: v.clone() for k, v in state.items()})
    F8.set_fp8_products(fresh, True)
    after = target(x)
    assert not torch.equal(after, before) and torch.equal(after, fresh(x))


def test_copies_quantize_their_own_weight():
    import copy
    import pickle

    layer = frozen_layer(32, 32)
    F8.set_fp8_products(layer, True)
    x = spread_inputs(8, 32)
    want = layer(x)
    twin = copy.deepcopy(layer)  # as the EMA copies a model
    assert twin.__dict__["_fp8_cache"].q is None  # starts empty, never shares the original's copy
    assert torch.equal(twin(x), want) and twin.__dict__["_fp8_cache"].q is not None
    unpickled = pickle.loads(pickle.dumps(layer.__dict__["_fp8_cache"]))
    assert unpickled.q is None and not unpickled.holds(layer.weight, layer.weight.quant_state, x.device)


def test_modes_and_the_copies_each_keeps(monkeypatch):
    model = _wrapper("all")
    eligible = [m for m in model.modules() if hasattr(type(m), "frozen_matmul")
                and m.in_features % 16 == 0 and m.out_features % 16 == 0]
    assert all(m.frozen_matmul is F8.fp8_frozen_linear_all for m in eligible)
    size = F8.quantize_fp8_weights(model, torch.device("cpu"))  # W and W.T, with their scales
    assert size == sum(2 * m.in_features * m.out_features + 4 * (m.in_features + m.out_features) for m in eligible)
    assert F8.set_fp8_products(model, "forward") == len(eligible) + 4  # the adapters too: their hook declines
    assert not any("_fp8_cache_t" in m.__dict__ for m in eligible)
    for bad in ("fp8", 1, "all "):
        with pytest.raises(ValueError, match=f"frozen_fp8={bad!r} is not one of False, True"):
            MemoryPolicy(frozen_dtype=BF16, frozen_fp8=bad)
    with pytest.raises(ConfigError, match="frozen_fp8='both' is not one of"):
        WrapperOptions.from_mapping(dict(frozen_dtype="bf16", frozen_fp8="both"))


def _products(block, x):
    """``(block(x), d sum(block(x) * w) / dx)`` for a fixed ``w``."""
    x = x.clone().requires_grad_(True)
    out = block(x)
    (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), x.grad


def test_a_held_copy_serves_a_product_unless_fp8_takes_them_all():
    """Poisoned held copies (zeros) tell which products read them: with ``"all"`` neither forward nor backward
    changes, so the planner offers no plan holding them (:func:`fp8_takes_every_product`); with the fp8 forward
    alone the bf16 backward reads them."""
    cpu, x = torch.device("cpu"), spread_inputs(8, 32)
    block = torch.nn.Sequential(frozen_layer(32, 48), frozen_layer(48, 32, seed=1))
    layers = list(block)
    assert not F8.fp8_takes_every_product(block, cpu, BF16)  # bf16 products
    for mode, served in (("all", False), ("forward", True)):
        F8.set_fp8_products(block, mode)
        clean = _products(block, x)
        for layer in layers:
            layer.held_weight = torch.zeros(layer.out_features, layer.in_features, dtype=BF16)
        poisoned = _products(block, x)
        for layer in layers:
            layer.held_weight = None
        assert torch.equal(poisoned[0], clean[0])  # the forward is fp8 in both modes
        assert torch.equal(poisoned[1], clean[1]) != served
        assert F8.fp8_takes_every_product(block, cpu, BF16) != served
    F8.set_fp8_products(block, "all")
    assert F8.fp8_takes_every_product(block, cpu, None)  # the layers' compute_dtype: bf16
    assert not F8.fp8_takes_every_product(block, cpu, torch.float16)  # fp16 calls keep their products
    assert not F8.fp8_takes_every_product(block, torch.device("meta"), BF16)  # no fp8 there
    odd = torch.nn.Sequential(frozen_layer(32, 48), frozen_layer(48, 24))  # 24: no fp8 product
    F8.set_fp8_products(odd, "all")
    assert not F8.fp8_takes_every_product(odd, cpu, BF16)
    assert not F8.fp8_takes_every_product(torch.nn.Linear(32, 32), cpu, BF16)  # nothing quantized
