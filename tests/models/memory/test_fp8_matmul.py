"""The frozen 4-bit layers' fp8 forward (``custom.frozen_fp8``): its error model, its backward, its installation.

The quantization kernel's own checks live in ``fp8_kernel_cases.py`` and run in a fresh process (Triton's CPU
interpreter is chosen when Triton is first imported). Here the layer's product runs on the CPU through
``torch._scaled_mm``'s reference kernel, with the rows quantized by the PyTorch reference.

Error model (unit roundoffs: e4m3 ``u8 = 2^-4``, bf16 ``ub = 2^-8``, float32 ``u32 = 2^-24``): each value ``v``
of a row with scale ``s`` is stored as ``q * s`` with ``|q * s - v| <= u8 |v| + 2^-10 s`` (e4m3's normal range;
its subnormals are ``2^-9`` apart), to first order in ``u32`` for the scaling. The product of the stored
operands is accumulated in float32 (at most ``K u32`` of the sum of magnitudes), the bias added in bf16, the
result rounded to bf16 (``ub``).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from opentad.models.backbones.wrapper_options import WrapperOptions
from opentad.models.bricks.quant import QuantSpec, dequantize_weight, quantize_linear
from opentad.models.memory import fp8_matmul as F8
from opentad.models.memory.policy import MemoryPolicy, apply_memory_policy
from opentad.registry import ConfigError

pytest.importorskip("bitsandbytes")

BF16 = torch.bfloat16
U8, UB, U32 = 2.0**-4, 2.0**-8, 2.0**-24
CASES = Path(__file__).with_name("fp8_kernel_cases.py")
ROOT = Path(__file__).resolve().parents[3]


def _layer(k: int, m: int, seed: int = 0, bias: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    layer = quantize_linear(nn.Linear(k, m, bias=bias), QuantSpec(compute_dtype=BF16))
    with torch.no_grad():
        if bias:
            layer.bias.normal_()
    return layer


def _inputs(rows: int, k: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    # magnitudes spread over six decades, so that rows reach e4m3's subnormals
    return (torch.randn(rows, k, generator=gen) * torch.logspace(-3, 3, k)[torch.randperm(k, generator=gen)]).to(BF16)


def _run_cases(device: str, interpret: bool) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("TRITON_INTERPRET", None)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    done = subprocess.run([sys.executable, str(CASES), "--device", device], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    passed = [line for line in lines if line.startswith("ok ")]
    assert lines[-1] == f"all {len(passed)} checks passed" and len(passed) >= 26, done.stdout[-3000:]


def test_the_kernel_in_tritons_interpreter_matches_the_reference_bitwise():
    pytest.importorskip("triton")
    _run_cases("cpu", interpret=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the compiled kernel needs a CUDA device")
def test_the_kernel_on_cuda_matches_the_reference_bitwise():
    pytest.importorskip("triton")
    _run_cases("cuda", interpret=False)


@pytest.fixture
def cublaslt_layouts(monkeypatch):
    """``torch._scaled_mm`` refusing what CUDA's cuBLASLt refuses (the CPU kernel takes any strides): the first
    operand row-major, the second column-major. Returns the list of calls made."""
    calls, real = [], torch._scaled_mm

    def checked(a, b, *args, **kwargs):
        assert a.stride(1) == 1 and b.stride(0) == 1, f"cuBLASLt refuses strides {a.stride()} @ {b.stride()}"
        calls.append((tuple(a.shape), tuple(b.shape)))
        return real(a, b, *args, **kwargs)

    monkeypatch.setattr(torch, "_scaled_mm", checked)
    return calls


def test_hand_worked_rows():
    x = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0], [448.0, 17.0, 19.0, -17.0]])
    q, scale = F8.quantize_rows_reference(x)
    # row 0: amax 2, every value times 224 is on the e4m3 grid; row 1: all zero, no NaN; row 2: ties to even
    assert q.float().tolist() == [[224.0, -448.0, 112.0, 0.0], [0.0] * 4, [448.0, 16.0, 20.0, -16.0]]
    assert torch.equal(scale.flatten(), torch.tensor([2.0, F8.TINY, 448.0]) / 448.0)  # float32 divisions


def test_quantized_rows_stay_within_the_error_model():
    x = _inputs(64, 256).float()
    q, scale = F8.quantize_rows_reference(x)
    err = (q.double() * scale.double() - x.double()).abs()
    bound = (U8 + 4 * U32) * x.double().abs() + 2.0**-10 * scale.double() * (1 + 4 * U32)
    assert bool((err <= bound).all())
    assert bool((err > 0).any())  # e4m3 really rounds these values
    # the scale is the correctly rounded quotient (float64's rounding of a float32 quotient then to float32 is
    # exact rounding: 53 >= 2 * 24 + 2), as the kernel's div_rn; CUDA's tensor-by-scalar division is not
    amax = x.abs().amax(dim=1, keepdim=True)
    assert torch.equal(scale, (amax.double() / 448.0).float())
    assert q.is_contiguous() and F8.quantize_rows_reference(x.t())[0].is_contiguous()


def _emulated(x: torch.Tensor, layer: nn.Module):
    """float64 product of the quantized operands, the exact product, and magnitudes for the bounds."""
    w = dequantize_weight(layer).double()
    qx, sx = F8.quantize_rows_reference(x)
    qw, sw = F8.quantize_rows_reference(w.float())
    xs, ws = qx.double() * sx.double(), qw.double() * sw.double()
    bias = layer.bias.to(BF16).double()
    stored = xs @ ws.t()
    exact = x.double() @ w.t() + layer.bias.double()
    return stored, bias, exact, xs.abs() @ ws.abs().t(), w, sx.double(), sw.double()


def test_the_layer_multiplies_the_quantized_operands(cublaslt_layouts):
    k, m = 96, 48
    layer = _layer(k, m)
    x = _inputs(40, k)
    assert F8.set_fp8_products(layer, True) == 1
    y = layer(x)
    stored, bias, _, mags, *_ = _emulated(x.float(), layer)
    assert y.dtype == BF16 and y.shape == (40, m)
    # float32 accumulation of the stored operands, bias in bf16 (exact in float32), one bf16 rounding
    want = stored + bias
    bound = k * U32 * mags + UB * (want.abs() + k * U32 * mags) + 1e-30
    assert bool(((y.double() - want).abs() <= bound).all())
    assert cublaslt_layouts == [((40, k), (k, m))]


def test_the_layer_is_within_the_error_model_of_the_exact_product():
    k, m = 96, 48
    layer = _layer(k, m, seed=3)
    x = _inputs(40, k, seed=4)
    F8.set_fp8_products(layer, True)
    y = layer(x).double()
    _, _, exact, _, w, sx, sw = _emulated(x.float(), layer)
    ax, aw = x.double().abs(), w.abs()
    ex = U8 * ax + 2.0**-10 * sx  # per value of x, [R, K]
    ew = U8 * aw + 2.0**-10 * sw  # per value of W, [M, K]
    operand = ex @ aw.t() + ax @ ew.t() + ex @ ew.t()
    accum = k * U32 * ((ax + ex) @ (aw + ew).t())
    bias_round = UB * layer.bias.double().abs()
    bound = (operand + accum + bias_round) * (1 + 8 * U32) + UB * (exact.abs() + operand + accum + bias_round)
    assert bool(((y - exact).abs() <= bound).all())
    assert float((y - exact).abs().max()) > float((UB * exact.abs()).max())  # not the bf16 product in disguise


def test_backward_is_the_bf16_product_with_the_frozen_weight_and_nothing_else_trains():
    k, m = 64, 32
    layer = _layer(k, m)
    F8.set_fp8_products(layer, True)
    x = _inputs(24, k).float().requires_grad_(True)
    grad = torch.randn(24, m, generator=torch.Generator().manual_seed(9)).to(BF16)
    with torch.autocast("cpu", dtype=BF16):
        y = layer(x)
    assert y.dtype == BF16
    y.backward(grad)
    w = dequantize_weight(layer).to(BF16).double()
    want = grad.double() @ w
    bound = k * U32 * (grad.double().abs() @ w.abs()) + UB * want.abs() * (1 + U32) + 1e-30
    assert x.grad.dtype == torch.float32
    assert bool(((x.grad.double() - want).abs() <= bound).all())
    assert all(p.grad is None for p in layer.parameters())


@pytest.mark.parametrize("why", ["float32", "width 40", "no rows"])
def test_otherwise_the_layer_keeps_its_own_product(why):
    k, m = (40, 32) if why == "width 40" else (32, 48)
    layer = _layer(k, m)
    x = _inputs(0 if why == "no rows" else 8, k)
    if why == "float32":
        layer.compute_dtype = torch.float32
        x = x.float()
    plain = layer(x)
    F8.set_fp8_products(layer, True)
    assert F8.fp8_frozen_linear(layer, x, layer.compute_dtype) is None
    assert torch.equal(layer(x), plain)


def test_a_weight_changed_in_place_is_quantized_again():
    layer, other = _layer(32, 32, seed=0), _layer(32, 32, seed=1)
    F8.set_fp8_products(layer, True)
    x = _inputs(8, 32)
    before = layer(x)
    with torch.no_grad():  # as loading a state dict does: an in-place copy into the parameter
        layer.weight.copy_(other.weight)
    after = layer(x)
    layer.__dict__.pop("_fp8_cache")
    assert not torch.equal(before, after) and torch.equal(after, layer(x))


WRAPPER = dict(
    type="mmaction.Recognizer3D",
    backbone=dict(type="VisionTransformerQLoRA", img_size=32, patch_size=16, embed_dims=32, depth=2, num_heads=2,
                  mlp_ratio=2.0, qkv_bias=True, num_frames=4, total_frames=16, adapter_index=[0, 1],
                  return_feat_map=True, lora_r=4, lora_alpha=8, lora_dropout=0.0, quantize_bits=4,
                  quantize_backbone=True),
    data_preprocessor=dict(type="mmaction.ActionDataPreprocessor", mean=[120.0, 110.0, 100.0],
                           std=[60.0, 55.0, 50.0], format_shape="NCTHW"),
    custom=dict(pre_processing_pipeline=[dict(type="Rearrange", keys=["frames"],
                                              ops="b n c (t1 t) h w -> (b t1) n c t h w", t1=4)],
                post_processing_pipeline=[dict(type="Reduce", keys=["feats"], ops="b n c t h w -> b c t",
                                               reduction="mean"),
                                          dict(type="Rearrange", keys=["feats"], ops="(b t1) c t -> b c (t1 t)",
                                               t1=4)],
                frozen_dtype="bf16"),
)


def _wrapper(fp8: bool):
    import copy

    from opentad.models.builder import build_backbone

    cfg = copy.deepcopy(WRAPPER)
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
    layer = _layer(32, 32)
    x = _inputs(8, 32)
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
    F8.fp8_supported.cache_clear()
    with caplog.at_level("WARNING", logger="opentad.models.memory.fp8_matmul"):
        assert not F8.fp8_supported(torch.device("meta")) and not F8.fp8_supported(torch.device("meta"))
        assert F8.fp8_supported(torch.device("cpu"))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "meta has no fp8 matrix products" in warnings[0] and "bf16" in warnings[0]


def test_weights_loaded_again_are_quantized_again_whatever_address_they_get():
    """Loading quantized weights replaces the parameter (and its quantization state), and a new weight may
    take a freed one's address with a fresh version counter. The worst case, made on purpose: a new weight
    over the very bytes of the cached one, with another layer's statistics. The cache must see another
    weight, not an unchanged address and version."""
    from opentad.models.bricks.quant_io import export_quantized, import_quantized

    target, other = _layer(64, 48, seed=0), _layer(64, 48, seed=5)
    x = _inputs(8, 64)
    F8.set_fp8_products(target, True)
    before = target(x)  # cached from the first weight
    state = export_quantized(other)
    state["weight"] = target.weight.data  # the same storage, so the same address
    import_quantized(target, state)
    assert target.weight.untyped_storage().data_ptr() == state["weight"].untyped_storage().data_ptr()
    fresh = _layer(64, 48)
    import_quantized(fresh, {k: v.clone() for k, v in state.items()})
    F8.set_fp8_products(fresh, True)
    after = target(x)
    assert not torch.equal(after, before) and torch.equal(after, fresh(x))


def test_copies_quantize_their_own_weight():
    import copy
    import pickle

    layer = _layer(32, 32)
    F8.set_fp8_products(layer, True)
    x = _inputs(8, 32)
    want = layer(x)
    twin = copy.deepcopy(layer)  # as the EMA copies a model
    assert twin.__dict__["_fp8_cache"].q is None  # starts empty, never shares the original's copy
    assert torch.equal(twin(x), want) and twin.__dict__["_fp8_cache"].q is not None
    unpickled = pickle.loads(pickle.dumps(layer.__dict__["_fp8_cache"]))
    assert unpickled.q is None and not unpickled.holds(layer.weight, layer.weight.quant_state, x.device)


def test_the_fp8_backward_is_within_its_error_model(cublaslt_layouts):
    """``frozen_fp8="all"``: ``grad_x = e4m3(grad) @ e4m3(W)``, the gradient scaled per row, ``W`` per input
    channel (a row of ``W.T``); the same error model as the forward, with ``M`` products per value."""
    k, m = 64, 48
    layer = _layer(k, m, seed=6)
    assert F8.set_fp8_products(layer, "all") == 1
    x = _inputs(24, k, seed=7).float().requires_grad_(True)
    grad = _inputs(24, m, seed=8)
    with torch.autocast("cpu", dtype=BF16):
        y = layer(x)
    y.backward(grad)
    w = dequantize_weight(layer).double()
    g = grad.double()
    qg, sg = F8.quantize_rows_reference(grad)
    qw, sw = F8.quantize_rows_reference(w.float().t())  # [K, M], one scale per input channel
    stored = (qg.double() * sg.double()) @ (qw.double() * sw.double()).t()
    mags = (qg.double() * sg.double()).abs() @ (qw.double() * sw.double()).abs().t()
    tight = m * U32 * mags + UB * (stored.abs() + m * U32 * mags) + 1e-30
    assert bool(((x.grad.double() - stored).abs() <= tight).all())  # exactly those quantized operands
    exact = g @ w
    eg = U8 * g.abs() + 2.0**-10 * sg.double()  # [R, M]
    ew = U8 * w.abs() + 2.0**-10 * sw.double().t()  # [M, K]: W's column k scaled by sw[k]
    operand = eg @ w.abs() + g.abs() @ ew + eg @ ew
    accum = m * U32 * ((g.abs() + eg) @ (w.abs() + ew))
    bound = (operand + accum) * (1 + 8 * U32) + UB * (exact.abs() + operand + accum)
    assert bool(((x.grad.double() - exact).abs() <= bound).all())
    assert float((x.grad.double() - exact).abs().max()) > float((UB * exact.abs()).max())  # really fp8
    assert all(p.grad is None for p in layer.parameters())
    assert cublaslt_layouts == [((24, k), (k, m)), ((24, m), (m, k))]  # forward, then the input gradient


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
