"""DyFADet's dynamic convolutions against references written out here from upstream's formulas.

The references loop over kernel taps and channels in float64; the modules run in float64 too
(``.double()``), so both evaluate the same real numbers in another order. Each output is a
LayerNorm of sums of at most ``n = C * K * K`` products of values below 10 in magnitude; reordering
changes such a sum by at most ``n * 2^-53 * sum|terms|`` (< 1e-12 here) and the norm divides by a
standard deviation above 1e-2 on these random inputs, so ``ATOL = 1e-9`` bounds the difference.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from opentad.models.bricks.dynamic_conv import (
    DTFAM,
    DynamicScaleFusion,
    GateActivation,
    GateOptions,
    source_levels,
)

ATOL = 1e-9


def _layer_norm(x, weight, bias, eps=1e-6):
    mean = x.mean(dim=1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight[None, :, None] + bias[None, :, None]


def _unfold(x, k):
    """``[B, C, T] -> [B, C, K, T]``: tap ``j`` holds ``x[t + j - k // 2]``, zero outside."""
    b, c, t = x.shape
    out = torch.zeros(b, c, k, t, dtype=x.dtype)
    for j in range(k):
        shift = j - k // 2
        for s in range(t):
            if 0 <= s + shift < t:
                out[:, :, j, s] = x[:, :, s + shift]
    return out


def _conv(x, weight, bias, groups=1):
    """Zero-padded 'same' conv by explicit taps: ``weight [O, I/g, K]``."""
    k = weight.shape[-1]
    taps = _unfold(x, k)  # [B, I, K, T]
    b, i, _, t = taps.shape
    o = weight.shape[0]
    per_in, per_out = i // groups, o // groups
    out = torch.zeros(b, o, t, dtype=x.dtype)
    for oc in range(o):
        g = oc // per_out
        block = taps[:, g * per_in:(g + 1) * per_in]  # [B, I/g, K, T]
        out[:, oc] = (block * weight[oc][None, :, :, None]).sum(dim=(1, 2)) + bias[oc]
    return out


def _gate(kind, x, tau=1.5):
    if kind == "GeReTanH":
        return ((torch.tanh(x - tau) + math.tanh(tau)) / (1 + math.tanh(tau))).clamp(min=0)
    return {"Sigmoid": torch.sigmoid, "ReLU": torch.relu, "ReTanH": lambda v: torch.tanh(v).clamp(min=0)}[kind](x)


def _inputs(b=2, c=4, t=9, valid=(9, 6)):
    torch.manual_seed(3)
    x = torch.randn(b, c, t, dtype=torch.float64)
    mask = torch.zeros(b, t, dtype=torch.bool)
    for i, n in enumerate(valid):
        mask[i, :n] = True
    return x, mask


def _randomize(module):
    torch.manual_seed(5)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "shift_conv" not in name:
                p.copy_(torch.randn_like(p) * 0.5)
    return module.double()


def test_gate_activations_hand_values():
    ge = GateActivation("GeReTanH", tau=1.5)
    x = torch.tensor([-3.0, 0.0, 1.5, 50.0], dtype=torch.float64)
    t = math.tanh(1.5)
    expected = torch.tensor([0.0, 0.0, t / (1 + t), 1.0], dtype=torch.float64)
    torch.testing.assert_close(ge(x), expected, rtol=0, atol=1e-15)
    assert GateActivation("ReTanH")(x).tolist() == [0.0, 0.0, math.tanh(1.5), 1.0]
    with pytest.raises(ValueError, match="not supported"):
        GateActivation("Swish")


def test_shift_conv_unfolds_and_is_frozen():
    module = DTFAM(3, 5, kernel_size=3, gate=GateOptions())
    assert not module.shift_conv.weight.requires_grad
    x = torch.arange(12.0).reshape(1, 3, 4)
    u = module.shift_conv(x)  # channel c*3 + j holds x[c, t + j - 1]
    assert u[0, 0].tolist() == [0.0, 0.0, 1.0, 2.0]
    assert u[0, 1].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert u[0, 5].tolist() == [5.0, 6.0, 7.0, 0.0]


@pytest.mark.parametrize("dyn_type", ["c", "ck", "k"])
def test_gate_mode_dtfam_matches_reference(dyn_type):
    c, k, out_dim = 4, 3, 5
    module = _randomize(DTFAM(c, out_dim, kernel_size=k, conv_type="gate", gate=GateOptions(dyn_type=dyn_type)))
    x, mask = _inputs(c=c)
    m = mask[:, None].double()
    taps = _unfold(x, k)  # [B, C, K, T]
    gc = module.kernel_conv.gate_conv
    if dyn_type == "c":  # one gate per channel, shared by its taps
        g = _gate("GeReTanH", _conv(x, gc.weight, gc.bias, groups=c)) * m
        weight = taps * g[:, :, None]
    elif dyn_type == "ck":  # one gate per channel and tap
        g = _gate("GeReTanH", _conv(x, gc.weight, gc.bias, groups=c)) * m
        weight = taps * g.view(2, c, k, -1)
    else:  # one gate per tap; the gated taps come back in (tap, channel) order
        g = _gate("GeReTanH", _conv(x, gc.weight, gc.bias)) * m  # [B, K, T]
        weight = (taps.transpose(1, 2) * g[:, :, None]).reshape(2, c, k, -1)
    aggregated = (taps * weight).reshape(2, c * k, -1)  # u * w = u^2 g
    expected = _layer_norm(_conv(aggregated, module.conv.weight, module.conv.bias), module.norm.weight,
                           module.norm.bias) * m
    torch.testing.assert_close(module(x, mask), expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", ["GeReTanH", "Sigmoid"])
def test_conv_mode_dtfam_matches_reference(kind):
    c, k, out_dim = 4, 3, 5
    module = _randomize(DTFAM(c, out_dim, kernel_size=k, conv_type="others", gate=GateOptions(type=kind)))
    x, mask = _inputs(c=c)
    m = mask[:, None].double()
    u = _unfold(x, k).reshape(2, c * k, -1)
    dyn = module.kernel_conv
    data = _layer_norm(_conv(u, dyn.conv.weight, dyn.conv.bias), dyn.norm.weight, dyn.norm.bias) * m
    gate = _gate(kind, _conv(u, dyn.gate.gate_conv.weight, dyn.gate.gate_conv.bias)) * m  # one gate [B, 1, T]
    w = (data * gate * m)[:, :, None].expand(2, c, k, -1).reshape(2, c * k, -1)
    expected = _layer_norm(_conv(u * w, module.conv.weight, module.conv.bias), module.norm.weight,
                           module.norm.bias) * m
    torch.testing.assert_close(module(x, mask), expected, rtol=0, atol=ATOL)


def test_source_levels_are_the_two_neighbours():
    assert source_levels(0, 4, 2) == [(1, 1)]
    assert source_levels(2, 4, 2) == [(0, 1), (1, 3)]
    assert source_levels(3, 4, 2) == [(0, 2)]
    assert source_levels(1, 4, 3) == [(0, 0), (1, 2), (2, 3)]


def test_scale_fusion_matches_reference():
    c = 4
    depth = DTFAM(c, 6, kernel_size=3, conv_type="others", gate=GateOptions(type="Sigmoid"))
    module = _randomize(DynamicScaleFusion(c, kernel_size=3, depth_module=depth, gate=GateOptions(type="Sigmoid")))
    assert all(conv.kernel_conv.activation.kind == "GeReTanH" for conv in module.dynamic_convs)
    torch.manual_seed(4)
    feats = [torch.randn(2, c, 8 // 2**i, dtype=torch.float64) for i in range(3)]
    masks = [torch.ones(2, 8 // 2**i, dtype=torch.bool) for i in range(3)]
    masks[0][1, 6:] = False
    masks[1][1, 3:] = False
    outputs = module(feats, masks)
    for level, x in enumerate(feats):
        parts = []
        if level > 0:  # from below, by conv 0, nearest-resampled (upsampling repeats, downsampling picks 2t)
            parts.append(module.dynamic_convs[0](feats[level - 1], masks[level - 1]))
        if level < 2:
            parts.append(module.dynamic_convs[1](feats[level + 1], masks[level + 1]))
        t = x.shape[-1]
        resized = [p[..., (torch.arange(t) * p.shape[-1]) // t] for p in parts]
        fused = sum(resized) * module.scale_weight + x * module.output_weight
        expected = F.relu(depth(fused, masks[level]))
        torch.testing.assert_close(outputs[level], expected, rtol=0, atol=ATOL)
