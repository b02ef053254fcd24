"""BMNExtractor: the sparse sampling equals upstream's dense mask product, checked against a brute-force loop.

The reference mask is built here proposal by proposal with Python floats, following upstream's
``_get_interp1d_mask`` (``math.modf`` / ``math.ceil``, so a point in (-1, 0) gives weight 1 to step 0),
and the reference forward is upstream's ``tensordot`` + ``conv3d`` in float64.

Error model (stated, not observed): with u32 = 2^-24 and u64 = 2^-53,

* mask entries: ours are the float64 sum rounded once to float32, so
  ``|ours - ref| <= u32 |ref| + 2 * 6 * u64 * 2`` (at most 6 float64 terms of size <= 2 per entry,
  summed in another order);
* the map before the ReLU is a sum of K = H * N * T products ``w x m`` (plus the bias) evaluated in
  float32 in some order, with float32-rounded mask entries: ``|ours - ref| <= (K + 2) u32 A`` with
  ``A = |W| |x| |M| + |b|`` computed in float64; the ReLU is 1-Lipschitz;
* gradients in float64 (ours against autograd through the dense reference with upstream's float32
  mask, whose entries ours may differ from by the rounding above): ``|ours - ref| <= (u32 + 2 (K + 2) u64) A'``
  with ``A'`` the same products in absolute values.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from opentad.models.roi_heads.roi_extractors import BMNExtractor
from opentad.models.roi_heads.roi_extractors.bmn_extractor import bm_sampling_matrix
from opentad.registry import ROI_HEADS, build

U32, U64 = 2.0**-24, 2.0**-53


def brute_force_mask(tscale, dscale, num_sample, per_bin, ratio):
    """Upstream's mask ``[T, N, D, T]`` in float64, one proposal at a time."""
    mask = torch.zeros(tscale, num_sample, dscale, tscale, dtype=torch.float64)
    for start in range(tscale):
        for dur in range(dscale):
            if start + dur >= tscale:
                continue
            center_len = float(dur) + 1
            xmin = start - center_len * ratio
            xmax = start + dur + center_len * ratio
            step = (xmax - xmin) / (num_sample * per_bin - 1.0)
            points = [xmin + step * i for i in range(num_sample * per_bin)]
            for n in range(num_sample):
                column = [0.0] * tscale
                for x in points[n * per_bin:(n + 1) * per_bin]:
                    frac, down = math.modf(x)
                    up = math.ceil(x)
                    if 0 <= int(down) <= tscale - 1:
                        column[int(down)] += 1 - frac
                    if 0 <= int(up) <= tscale - 1:
                        column[int(up)] += frac
                for s in range(tscale):
                    mask[s, n, dur, start] = (1.0 / per_bin) * column[s]
    return mask


def _dense(matrix, tscale, dscale, num_sample):
    return matrix.to_dense().double().view(dscale, tscale, num_sample, tscale).permute(3, 2, 0, 1)


@pytest.mark.parametrize("tscale, dscale, num_sample, per_bin, ratio", [
    (12, 12, 4, 3, 0.5), (16, 7, 5, 2, 0.5), (10, 10, 3, 1, 0.25),
])
def test_sampling_matrix_is_upstreams_mask(tscale, dscale, num_sample, per_bin, ratio):
    ref = brute_force_mask(tscale, dscale, num_sample, per_bin, ratio)
    ours = _dense(bm_sampling_matrix(tscale, dscale, num_sample, per_bin, ratio), tscale, dscale, num_sample)
    bound = U32 * ref.abs() + 2 * 6 * U64 * 2
    assert ((ours - ref).abs() <= bound).all()
    # the (-1, 0) quirk: proposal [0, 0] extended to [-0.5, 0.5]; its first point -0.5 puts weight 1 on step 0
    assert ref[0, 0, 0, 0] > 0 and ours[0, 0, 0, 0] > 0


def _extractor(tscale, dscale, dtype=torch.float32):
    torch.manual_seed(0)
    module = build(dict(type="BMNExtractor", in_channels=6, hid_channels=5, roi_channels=7, out_channels=3,
                        tscale=tscale, dscale=dscale, num_sample=4, num_sample_perbin=3, prop_extend_ratio=0.5),
                   ROI_HEADS)
    for p in module.parameters():  # biases nonzero, so the invalid entries' relu(bias) is checked too
        torch.nn.init.uniform_(p, -0.5, 0.5)
    return module.to(dtype)


def _reference_map(module, x, mask):
    """Upstream's forward up to the conv3d ReLU, float64: ``[B, R, D, T]`` and its absolute-value bound."""
    conv = module.conv3d[0]
    w, b = conv.weight.double(), conv.bias.double()
    sampled = torch.tensordot(x, mask, dims=([2], [0]))  # [B, H, N, D, T]
    pre = F.conv2d(sampled.flatten(3, 4), w, b, stride=(mask.shape[1], 1)).squeeze(2)
    absolute = F.conv2d(torch.tensordot(x.abs(), mask.abs(), dims=([2], [0])).flatten(3, 4), w.abs(), b.abs(),
                        stride=(mask.shape[1], 1)).squeeze(2)
    shape = (x.shape[0], w.shape[0]) + mask.shape[2:]
    return F.relu(pre).view(shape), absolute.view(shape)


@pytest.mark.parametrize("tscale, dscale", [(16, 16), (16, 9)])
def test_forward_is_upstreams_dense_product_within_float32_rounding(tscale, dscale):
    module = _extractor(tscale, dscale)
    x = torch.randn(2, 5, tscale)
    ours = module.boundary_matching(x).double()
    ref, absolute = _reference_map(module, x.double(), brute_force_mask(tscale, dscale, 4, 3, 0.5))
    k = 5 * 4 * tscale
    assert ((ours - ref).abs() <= (k + 2) * U32 * absolute).all()
    out = module(torch.randn(2, 6, tscale))
    assert out.shape == (2, 3, dscale, tscale)


def test_gradients_match_the_dense_reference_in_float64():
    tscale, dscale = 12, 12
    module = _extractor(tscale, dscale, torch.float64)
    mask = brute_force_mask(tscale, dscale, 4, 3, 0.5).float().double()  # upstream stores it in float32
    x = torch.randn(2, 5, tscale, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(2, 7, dscale, tscale, dtype=torch.float64)
    (module.boundary_matching(x) * grad_out).sum().backward()
    ours_x, ours_w = x.grad.clone(), module.conv3d[0].weight.grad.clone()
    x.grad = None
    module.zero_grad()
    ref, _ = _reference_map(module, x, mask)
    (ref * grad_out).sum().backward()
    w = module.conv3d[0].weight.detach().squeeze(-1)
    k = U32 + 2 * (5 * 4 * tscale + 2) * U64
    bound_x = k * torch.einsum("brdt,rhn,sndt->bhs", grad_out.abs(), w.abs(), mask.abs())
    bound_w = k * torch.einsum("brdt,bhs,sndt->rhn", grad_out.abs(), x.detach().abs(), mask.abs())
    assert ((ours_x - x.grad).abs() <= bound_x + 1e-300).all()
    assert ((ours_w - module.conv3d[0].weight.grad).squeeze(-1).abs() <= bound_w + 1e-300).all()


def test_state_dict_keys_are_upstreams_and_the_tables_are_not_keys():
    module = BMNExtractor(in_channels=6, hid_channels=5, roi_channels=7, out_channels=3, tscale=8, dscale=8,
                          num_sample=4)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {
        "reduce_dim.0.weight": (5, 6, 3), "reduce_dim.0.bias": (5,),
        "conv3d.0.weight": (7, 5, 4, 1), "conv3d.0.bias": (7,),
        "conv2d.0.weight": (3, 7, 1, 1), "conv2d.0.bias": (3,),
    }


def test_wrong_length_is_refused():
    with pytest.raises(ValueError, match="tscale"):
        _extractor(16, 16)(torch.randn(1, 6, 12))
