"""The selective scan's PyTorch fallback against a step-by-step recurrence written here.

Reference (float64, one step at a time, no chunks)::

    delta = softplus(delta + bias);  h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t;
    y_t = C_t . h_t + D u_t;  out = y * silu(z)

Error model. Every output is a sum of terms ``C_t[n] (prod_r exp(delta_r A_n)) delta_s B_s[n] u_s``
(plus ``D u_t``), each formed with at most ``k_term = 2 L + 16`` roundings (softplus, the exponent,
up to ``L`` decay factors, the products, the gate), and summed with at most ``L + N`` additions; the
exponents carry at most ``2 u`` relative error, ``|delta A| <= E`` each, so the decays are off by at
most ``2 u E L`` relatively. Both implementations are within
``u (k_term + L + N + 2 E L) M`` of the exact value, ``M`` being the same sum over absolute values
of the terms (computed here in float64 by the reference on ``|B|, |C|, |u|, |D|`` and ``|silu z|``),
so they differ by at most twice that, with ``u`` the unit roundoff of the lower precision.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from opentad.models.bricks import selective_scan as scan_module
from opentad.models.bricks.selective_scan import selective_scan, selective_scan_chunked

UNIT = {torch.float64: 2.0**-53, torch.float32: 2.0**-24}


def reference_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, gate=True):
    """The recurrence, one step at a time, in the inputs' precision (autograd-friendly)."""
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    if B.dim() == 3:
        B, C = B[:, None], C[:, None]
    per_group = dim // B.shape[1]
    B = B.repeat_interleave(per_group, dim=1)  # [batch, dim, N, L]: channel d uses group d // per_group
    C = C.repeat_interleave(per_group, dim=1)
    h = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(length):
        h = torch.exp(delta[:, :, t, None] * A) * h + (delta[:, :, t] * u[:, :, t])[..., None] * B[..., t]
        ys.append((h * C[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        y = y * (F.silu(z) if gate else z)
    return y


def make_inputs(batch=2, dim=6, length=37, n_state=4, groups=None, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)  # noqa: E731
    bc_shape = (batch, n_state, length) if groups is None else (batch, groups, n_state, length)
    return dict(
        u=r(batch, dim, length),
        delta=r(batch, dim, length),
        A=-torch.exp(r(dim, n_state)),  # negative, |A| in (0, ~20)
        B=r(*bc_shape),
        C=r(*bc_shape),
        D=r(dim),
        z=r(batch, dim, length),
        delta_bias=r(dim),
    )


def error_bound(inputs, unit):
    """``u (k_term + L + N + 2 E L) M`` per output (module docstring), ``M`` from the reference on absolute values."""
    x = {k: v.double() for k, v in inputs.items()}
    length, n_state = x["u"].shape[-1], x["A"].shape[1]
    delta = F.softplus(x["delta"] + x["delta_bias"][:, None])
    exponent = (delta[:, :, :, None] * x["A"][None, :, None, :]).abs().max().item()
    magnitude = reference_scan(
        x["u"].abs(), delta, x["A"], x["B"].abs(), x["C"].abs(), x["D"].abs(), F.silu(x["z"]).abs(), gate=False
    )
    factor = (2 * length + 16) + length + n_state + 2 * exponent * length
    return 2 * unit * factor * magnitude


@pytest.mark.parametrize("groups", [None, 1, 3])
@pytest.mark.parametrize("chunk_size", [1, 8, 37, 64])
def test_fallback_matches_recurrence_float64(groups, chunk_size):
    inputs = make_inputs(groups=groups)
    expected = reference_scan(**inputs, delta_softplus=True)
    got = selective_scan_chunked(**inputs, delta_softplus=True, chunk_size=chunk_size)
    assert got.dtype == torch.float64
    assert (got - expected).abs().le(error_bound(inputs, UNIT[torch.float64])).all()


def test_fallback_options_off_match_recurrence():
    """No D, no gate, no bias, no softplus (delta taken positive so the scan stays stable)."""
    inputs = make_inputs()
    inputs["delta"] = inputs["delta"].abs()
    kept = {k: inputs[k] for k in ("u", "delta", "A", "B", "C")}
    expected = reference_scan(**kept)
    got = selective_scan_chunked(**kept, chunk_size=5)
    bound_inputs = dict(inputs, D=torch.zeros_like(inputs["D"]), z=torch.full_like(inputs["z"], 30.0))
    bound_inputs["delta"] = inputs["delta"]
    assert (got - expected).abs().le(error_bound(bound_inputs, UNIT[torch.float64]) + 1e-300).all()


def test_fallback_float32_within_error_model():
    inputs = make_inputs(dim=8, length=64, n_state=16, groups=2, dtype=torch.float32)
    expected = reference_scan(**{k: v.double() for k, v in inputs.items()}, delta_softplus=True)
    got = selective_scan_chunked(**inputs, delta_softplus=True, chunk_size=16)
    assert got.dtype == torch.float32
    assert (got.double() - expected).abs().le(error_bound(inputs, UNIT[torch.float32])).all()


def test_gradients_match_recurrence_float64():
    """Gradients of ``sum(w * out)`` for every input against autograd through the reference.

    Error model: each gradient entry is a sum of at most ``T = L (L + 1) N + L`` terms, each a
    product of factors bounded by ``P`` (below; decays are <= 1) formed with at most
    ``2 L + 32`` roundings; both sides are within ``u (2 L + 32 + T) T P`` of the exact value.
    """
    inputs = make_inputs(length=19)
    leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    weight = torch.randn(inputs["u"].shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (weight * reference_scan(**leaves, delta_softplus=True)).sum().backward()
    expected = {k: v.grad for k, v in leaves.items()}
    leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    (weight * selective_scan_chunked(**leaves, delta_softplus=True, chunk_size=4)).sum().backward()
    length, n_state = inputs["u"].shape[-1], inputs["A"].shape[1]
    terms = length * (length + 1) * n_state + length
    delta = F.softplus(inputs["delta"] + inputs["delta_bias"][:, None])
    factors = [weight, inputs["u"], inputs["B"], inputs["C"], inputs["D"], inputs["z"], delta, inputs["A"]]
    bound_p = math.prod(max(1.0, f.abs().max().item()) for f in factors) * (1 + length)
    bound = UNIT[torch.float64] * (2 * length + 32 + terms) * terms * bound_p
    for name, leaf in leaves.items():
        assert leaf.grad is not None, name
        assert (leaf.grad - expected[name]).abs().max().item() <= bound, name
        assert expected[name].abs().max().item() > 1e3 * bound, f"{name}: the bound would not see an error"


def test_recompute_gives_identical_values_and_gradients():
    """Activation checkpointing reruns the same operations: results and gradients are bit-identical."""
    inputs = make_inputs(dtype=torch.float32)
    results = []
    for recompute in (False, True):
        leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
        out = selective_scan_chunked(**leaves, delta_softplus=True, chunk_size=8, recompute=recompute)
        out.square().sum().backward()
        results.append((out.detach(), {k: v.grad for k, v in leaves.items()}))
    assert torch.equal(results[0][0], results[1][0])
    for name in inputs:
        assert torch.equal(results[0][1][name], results[1][1][name]), name


def test_dispatch_uses_fallback_on_cpu(monkeypatch):
    inputs = make_inputs(dtype=torch.float32)
    monkeypatch.setattr(scan_module, "cuda_selective_scan", lambda: pytest.fail("kernel looked up for CPU tensors"))
    got = selective_scan(**inputs, delta_softplus=True)
    assert torch.equal(got, selective_scan_chunked(**inputs, delta_softplus=True))


@pytest.mark.parametrize(
    "change",
    [
        dict(A=torch.zeros(5, 4)),
        dict(B=torch.zeros(2, 4, 36)),
        dict(C=torch.zeros(2, 4, 4, 37)),  # 4 groups do not divide 6 channels
        dict(D=torch.zeros(7)),
        dict(z=torch.zeros(2, 6, 36)),
    ],
)
def test_bad_shapes_raise(change):
    inputs = dict(make_inputs(dtype=torch.float32), **change)
    with pytest.raises(ValueError):
        selective_scan_chunked(**inputs)
