"""The Mamba mixers against upstream's arithmetic, written out here step by step in float64.

Upstream (video-mamba-suite's mamba_ssm fork, OpenTAD's causal_proj.py): ``mamba_inner_fn_no_out_proj``
is ``x, z = xz``; ``x = silu(causal depthwise conv(x))``; ``(dt, B, C) = x_proj(x)``;
``delta = dt_proj.weight @ dt``; ``selective_scan(x, delta, -exp(A_log), B, C, D, z, dt_proj.bias,
softplus)``. DBM runs it once on the forward half and the time-reversed backward half of
``in_proj``'s output; ViM (bimamba v2) runs two parameter sets on ``xz`` and reversed ``xz``;
MixtureCausalBlock adds causal attention on a second pair of channels. The reference uses the
recurrence of test_selective_scan.py; both sides compute in float64 with at most a few hundred
roundings per term on inputs of size ~1, so they agree to 1e-9 (about 1e6 unit roundoffs).
"""
import pytest
import torch
import torch.nn.functional as F

from opentad.models.bricks.mamba import DBM, MixtureCausalBlock, ViM
from tests.models.bricks.test_selective_scan import reference_scan

TOL = 1e-9


def ref_inner(xz, conv_w, conv_b, xproj_w, dtproj_w, dtproj_b, A_log, D):
    """mamba_inner_fn_no_out_proj, spelled out (causal conv by left padding)."""
    x, z = xz.chunk(2, dim=1)
    k = conv_w.shape[-1]
    x = F.silu(F.conv1d(F.pad(x, (k - 1, 0)), conv_w, conv_b, groups=x.shape[1]))
    x_dbl = torch.einsum("ed,bdl->bel", xproj_w, x)
    rank, n = dtproj_w.shape[1], A_log.shape[1]
    dt, B, C = x_dbl[:, :rank], x_dbl[:, rank:rank + n], x_dbl[:, rank + n:]
    delta = torch.einsum("dr,brl->bdl", dtproj_w, dt)
    return reference_scan(x, delta, -torch.exp(A_log), B, C, D, z, dtproj_b, delta_softplus=True)


def params(m, suffix=""):
    conv, xp, dp = getattr(m, f"conv1d{suffix}"), getattr(m, f"x_proj{suffix}"), getattr(m, f"dt_proj{suffix}")
    return conv.weight, conv.bias, xp.weight, dp.weight, dp.bias, getattr(m, f"A{suffix}_log"), getattr(m, f"D{suffix}")


def ref_causal_attention(x_t, qkv, heads):
    batch, dim, length = x_t.shape
    y = F.conv1d(x_t, qkv.weight, qkv.bias, padding=1, groups=dim)  # [B, 3 d, L]
    q, k, v = y.view(batch, 3, heads, dim // heads, length).unbind(1)  # channel c = s d + h hd + j
    scores = torch.einsum("bhjt,bhjs->bhts", q, k) / (dim // heads) ** 0.5
    future = torch.ones(length, length, dtype=torch.bool).triu(1)
    weights = scores.masked_fill(future, float("-inf")).softmax(-1)
    return torch.einsum("bhts,bhjs->bhjt", weights, v).reshape(batch, dim, length)


def randomize(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
        for name, p in module.named_parameters():
            if name.startswith("A"):
                p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype))  # A = -exp(A_log) in (-e, -1)


@pytest.fixture
def hidden():
    return torch.randn(2, 13, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def test_dbm_matches_upstream_arithmetic(hidden):
    m = DBM(8, d_conv=4, expand=1).double()
    randomize(m, 0)
    xz = torch.einsum("ed,bld->bel", m.in_proj.weight, hidden)
    fwd, bwd = xz.chunk(2, dim=1)
    out_f = ref_inner(fwd, *params(m))
    out_b = ref_inner(bwd.flip(-1), *params(m)).flip(-1)
    expected = torch.einsum("ed,bdl->ble", m.out_proj.weight, torch.cat([out_f, out_b], dim=1))
    assert (m(hidden) - expected).abs().max().item() < TOL


@pytest.mark.parametrize("divide", [False, True])
def test_vim_matches_upstream_arithmetic(hidden, divide):
    m = ViM(8, d_conv=3, if_devide_out=divide).double()
    randomize(m, 1)
    xz = torch.einsum("ed,bld->bel", m.in_proj.weight, hidden)
    out = ref_inner(xz, *params(m)) + ref_inner(xz.flip(-1), *params(m, "_b")).flip(-1)
    out = out / 2 if divide else out
    expected = torch.einsum("ed,bdl->ble", m.out_proj.weight, out)
    assert (m(hidden) - expected).abs().max().item() < TOL


def test_mixture_causal_block_matches_upstream_arithmetic(hidden):
    m = MixtureCausalBlock(8, d_conv=4, expand=1, num_head=2).double()
    randomize(m, 2)
    xz = torch.einsum("ed,bld->bel", m.in_proj.weight, hidden)
    halves = []
    for part in (xz[:, :32], xz[:, 32:].flip(-1)):  # 8 d_inner channels: forward half, reversed backward half
        scan = ref_inner(part[:, :16], *params(m))
        x_t, z_t = part[:, 16:24], part[:, 24:]
        halves.append(torch.cat([scan, ref_causal_attention(x_t, m.qkv, 2) * F.silu(z_t)], dim=1))
    out = torch.cat([halves[0], halves[1].flip(-1)], dim=1)
    expected = torch.einsum("ed,bdl->ble", m.out_proj.weight, out)
    assert (m(hidden) - expected).abs().max().item() < TOL


def test_state_keys_and_initialisation():
    m = ViM(32, d_state=4)
    d_inner, rank = 64, 2
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    expected = {"in_proj.weight": (2 * d_inner, 32), "out_proj.weight": (32, d_inner)}
    for s in ("", "_b"):
        expected.update({
            f"conv1d{s}.weight": (d_inner, 1, 4), f"conv1d{s}.bias": (d_inner,),
            f"x_proj{s}.weight": (rank + 8, d_inner), f"dt_proj{s}.weight": (d_inner, rank),
            f"dt_proj{s}.bias": (d_inner,), f"A{s}_log": (d_inner, 4), f"D{s}": (d_inner,),
        })
    assert shapes == expected
    assert torch.equal(m.A_log, torch.log(torch.arange(1.0, 5.0)).repeat(d_inner, 1)) and torch.equal(m.D_b, torch.ones(64))
    dt = F.softplus(m.dt_proj.bias)
    assert dt.min() >= 0.001 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)  # softplus(bias) = dt in [dt_min, dt_max]
    assert m.dt_proj.weight.abs().max() <= rank**-0.5
